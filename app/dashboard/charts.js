// The job page's curves: training loss, the task's validation metric and the temperature, per
// series (teacher, distilled student, baseline), drawn as inline SVG line charts.

import { MODEL_STYLES, el, fmtNumber, replace, svg, swatch } from "./dom.js";

// The validation metric to plot: the one the job's task names (its catalog entry), else the loss.
export function validationMetric(rows, task) {
  const metric = task && task.validation_metric;
  if (metric && rows.some((r) => typeof r.values[metric.key] === "number")) {
    return [metric.key, metric.title];
  }
  return ["val_loss", "Validation loss"];
}

// `series`: {name (the model), stage (the stage that trains it)}, from the stage catalog.
export function renderCurves(legend, charts, rows, job, task, series) {
  const drawn = series.map((s) => ({ ...s, ...(MODEL_STYLES[s.name] || { label: s.name }) }));
  const byStage = {};
  for (const row of rows) (byStage[row.stage] = byStage[row.stage] || []).push(row);
  const points = (stage, key) =>
    (byStage[stage] || [])
      .filter((r) => typeof r.values[key] === "number" && Number.isFinite(r.values[key]))
      .map((r) => [r.epoch, r.values[key]]);
  const [valKey, valTitle] = validationMetric(rows, task);
  const specs = [
    { id: "loss", title: "Training loss", key: "train_loss", stages: drawn, log: true },
    { id: "validation", title: valTitle, key: valKey, stages: drawn },
    { id: "temperature", title: "Temperature (distillation)", key: "temperature", stages: drawn.filter((s) => s.name === "student") },
  ];
  replace(
    legend,
    drawn.map((s) => {
      const n = (byStage[s.stage] || []).length;
      const skipped = s.name === "baseline" && job.spec && job.spec.baseline === false;
      return el(
        "span",
        { class: "legend-item", "data-series": s.name },
        swatch(s.name),
        s.label,
        el("span", { class: "hint" }, skipped ? " (not run)" : ` (${n} epoch${n === 1 ? "" : "s"})`),
      );
    }),
  );
  replace(
    charts,
    specs.map((spec) =>
      lineChart(
        spec.id,
        spec.title,
        spec.stages.map((s) => ({ name: s.name, color: s.color, points: points(s.stage, spec.key) })),
        spec.log,
      ),
    ),
  );
}

// A step for about `count` ticks over [lo, hi]: 1, 2 or 5 times a power of ten.
export function niceStep(lo, hi, count) {
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  return magnitude * (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10);
}

// A tick's label, short enough for the axis: "0.25", "12", "2e+10".
export function tickLabel(value, step) {
  const abs = Math.abs(value);
  if (abs >= 1e5 || (abs > 0 && abs < 1e-3)) {
    return value.toExponential(1).replace(".0e", "e");
  }
  const decimals = step ? Math.min(6, Math.max(0, -Math.floor(Math.log10(step)))) : 3;
  return step ? value.toFixed(decimals) : String(Number(value.toPrecision(3)));
}

// The y axis for `values`: {lo, hi} in plotted units, ticks [value, label], and to(value).
// Linear, or logarithmic (ticks at 1, 2 and 5 times powers of ten) when `log` and all > 0.
export function yAxis(values, log) {
  const min = Math.min(...values);
  const max = Math.max(...values);
  if (log && min > 0) {
    const candidates = [];
    for (let k = Math.floor(Math.log10(min)) - 1; k <= Math.ceil(Math.log10(max)) + 1; k++) {
      for (const c of [1, 2, 5]) candidates.push(Number((c * 10 ** k).toPrecision(1)));
    }
    let low = candidates.filter((c) => c <= min).length - 1;
    let high = candidates.findIndex((c) => c >= max);
    if (low === high) {
      low -= 1;
      high += 1;
    }
    let ticks = candidates.slice(low, high + 1);
    const decade = (c) => Math.abs(Math.log10(c) - Math.round(Math.log10(c))) < 1e-9;
    if (ticks.length > 7) ticks = ticks.filter(decade);
    return {
      lo: Math.log10(candidates[low]),
      hi: Math.log10(candidates[high]),
      ticks: ticks.map((v) => [v, tickLabel(v, 0)]),
      to: Math.log10,
      log: true,
    };
  }
  let lo = min;
  let hi = max;
  if (hi - lo < 1e-9) {
    const pad = Math.abs(hi) > 1e-9 ? Math.abs(hi) * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(lo, hi, 5);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push([v, tickLabel(v, step)]);
  return { lo, hi, ticks, to: (v) => v, log: false };
}

export const W = 420;
export const H = 240;
export const M = { left: 54, right: 14, top: 12, bottom: 36 };

export function lineChart(id, title, series, log) {
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const all = series.flatMap((s) => s.points);
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    class: "chart",
    role: "img",
    "aria-label": title,
  });
  root.append(
    svg("rect", {
      class: "plot-area",
      x: M.left,
      y: M.top,
      width: plotW,
      height: plotH,
    }),
  );
  const caption = el("figcaption", {}, title);
  const figure = el("figure", { class: "chart-box", "data-chart": id }, caption, root);
  if (!all.length) {
    root.append(
      svg("text", { x: M.left + plotW / 2, y: M.top + plotH / 2, class: "empty", "text-anchor": "middle" }, "no data yet"),
    );
    return figure;
  }
  const xMax = Math.max(2, ...all.map((p) => p[0]));
  const xStep = Math.max(1, Math.round(niceStep(1, xMax, 6)));
  const axis = yAxis(
    all.map((p) => p[1]),
    log,
  );
  if (axis.log) caption.append(el("span", { class: "hint" }, " (log scale)"));
  const x = (v) => M.left + ((v - 1) / (xMax - 1)) * plotW;
  const y = (v) => M.top + plotH - ((axis.to(v) - axis.lo) / (axis.hi - axis.lo)) * plotH;

  const grid = svg("g", { class: "grid" });
  for (const [v, text] of axis.ticks) {
    const py = y(v);
    grid.append(
      svg("line", { x1: M.left, x2: M.left + plotW, y1: py, y2: py }),
      svg("text", { x: M.left - 6, y: py + 4, "text-anchor": "end" }, text),
    );
  }
  const firstX = xStep === 1 ? 1 : xStep;
  for (let v = firstX; v <= xMax; v += xStep) {
    const px = x(v);
    grid.append(
      svg("line", { x1: px, x2: px, y1: M.top + plotH, y2: M.top + plotH + 4 }),
      svg("text", { x: px, y: M.top + plotH + 17, "text-anchor": "middle" }, String(v)),
    );
  }
  grid.append(svg("text", { x: M.left + plotW / 2, y: H - 4, "text-anchor": "middle" }, "epoch"));
  root.append(grid);

  for (const s of series) {
    if (!s.points.length) continue;
    const group = svg("g", { class: "series", "data-series": s.name, "data-count": s.points.length });
    group.append(
      svg("polyline", {
        points: s.points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(" "),
        fill: "none",
        stroke: s.color,
        "stroke-width": 2.5,
        "stroke-linejoin": "round",
        "stroke-linecap": "round",
      }),
    );
    if (s.points.length <= 60) {
      for (const [px, py] of s.points) {
        group.append(
          svg(
            "circle",
            { cx: x(px).toFixed(1), cy: y(py).toFixed(1), r: 2.8, fill: s.color },
            svg("title", {}, `${s.name}, epoch ${px}: ${fmtNumber(py)}`),
          ),
        );
      }
    }
    root.append(group);
  }
  return figure;
}
