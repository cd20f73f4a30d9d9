// Small DOM helpers, formatting, and the pieces every view shows (status badges, progress
// bars, the series' colours). Elements are built with el() / svg(): text is never parsed as HTML.

export const SVG_NS = "http://www.w3.org/2000/svg";
export const viewRoot = document.getElementById("view");
// How each model's series looks; which stage trains it comes from the stage catalog.
export const MODEL_STYLES = {
  teacher: { label: "teacher", color: "#1f6fd1" },
  student: { label: "student (distilled)", color: "#e4572e" },
  baseline: { label: "baseline (from scratch)", color: "#2a9d3f" },
  pruned: { label: "pruned (KD recovery)", color: "#8e44ad" },
  qat: { label: "int8 (quantisation-aware KD)", color: "#d4a017" },
};

// --- small DOM helpers ----------------------------------------------------------------------

// el("a", {href: "#/", class: "x"}, "text", child, ...): an element; text is never parsed.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

export function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined && value !== false) {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

export function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

// --- formatting -------------------------------------------------------------------------------

export function fmtTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function fmtClock(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function fmtNumber(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
  return String(Number(value.toFixed(4)));
}

export function label(key) {
  return key.replace(/^test_/, "").replace(/_/g, " ");
}

export function fmtFlops(n) {
  if (n === null || n === undefined) return "—";
  for (const [unit, scale] of [["P", 1e15], ["T", 1e12], ["G", 1e9], ["M", 1e6]]) {
    if (n >= scale) return `${(n / scale).toFixed(2)} ${unit}`;
  }
  return String(n);
}

// --- shared pieces ----------------------------------------------------------------------------

export function statusBadge(status) {
  return el("span", { class: `status status-${status}` }, status);
}

export function progressBar(fraction) {
  const percent = Math.round(Math.min(1, Math.max(0, fraction || 0)) * 1000) / 10;
  const fill = el("div", { class: "fill" });
  fill.style.width = `${percent}%`;
  return el(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": percent,
    },
    fill,
    el("span", {}, `${percent}%`),
  );
}

export function swatch(name) {
  const style = MODEL_STYLES[name];
  const mark = el("span", { class: "swatch" });
  if (style) mark.style.background = style.color;
  return mark;
}
