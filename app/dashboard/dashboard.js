// The Distillery dashboard: a job list, a job page with live curves, and a submit form.
// Plain JavaScript with no libraries and no build step; it talks to the /v1 API with fetch and
// draws its charts as inline SVG. Routes live in the URL's hash: #/, #/jobs/<id>, #/new.
"use strict";

(function () {
  const KEY_STORE = "distillery.apiKey";
  const DRAFT_STORE = "distillery.draftSpec";
  const LIST_INTERVAL_MS = 2000;
  const JOB_INTERVAL_MS = 1000;
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  // The training stages a job records per-epoch metrics for, with their fixed colours.
  const SERIES = [
    { name: "teacher", stage: "pretrain_teacher", label: "teacher", color: "#1f6fd1" },
    { name: "student", stage: "distill", label: "student (distilled)", color: "#e4572e" },
    { name: "baseline", stage: "baseline", label: "baseline (from scratch)", color: "#2a9d3f" },
  ];
  const EXAMPLE_SPEC = `{
  "name": "digits-mlp128-to-mlp16",
  "dataset": {"name": "digits"},
  "teacher": {"arch": "mlp", "params": {"hidden": [128]},
              "train": {"epochs": 15, "batch_size": 64}},
  "student": {"arch": "mlp", "params": {"hidden": [16]}},
  "distill": {"method": "kd", "temperature": 4.0, "epochs": 15, "batch_size": 64},
  "baseline": true
}
`;
  const COMPRESSION_LABELS = {
    param_ratio: "parameters, teacher / student",
    size_ratio: "size, teacher / student",
    latency_speedup_cpu: "CPU latency, teacher / student",
    accuracy_retention: "test accuracy, student / teacher",
    bits_per_byte_over_teacher: "bits per byte, student − teacher",
    kd_gain: "distillation gain over the baseline",
  };

  const SVG_NS = "http://www.w3.org/2000/svg";
  const viewRoot = document.getElementById("view");
  const notice = document.getElementById("notice");
  const keyPanel = document.getElementById("key-panel");
  const keyInput = document.getElementById("key-input");
  const keyReason = document.getElementById("key-reason");
  let current = { alive: false, timer: 0 };

  // --- small DOM helpers ----------------------------------------------------------------------

  // el("a", {href: "#/", class: "x"}, "text", child, ...): an element; text is never parsed.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function replace(node, ...children) {
    node.replaceChildren();
    append(node, children);
  }

  // --- formatting -------------------------------------------------------------------------------

  function fmtTime(iso) {
    return iso ? new Date(iso).toLocaleString() : "—";
  }

  function fmtClock(iso) {
    return iso ? new Date(iso).toLocaleTimeString() : "";
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function fmtBytes(n) {
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

  function fmtNumber(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return value.toLocaleString("en");
    const abs = Math.abs(value);
    if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(2);
    return String(Number(value.toFixed(4)));
  }

  function label(key) {
    return key.replace(/^test_/, "").replace(/_/g, " ");
  }

  // --- API access -------------------------------------------------------------------------------

  class NeedsKey extends Error {}
  class Unreachable extends Error {}
  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || `HTTP ${status}`);
      this.status = status;
      this.code = error.code || `http_${status}`;
      this.param = error.param || null;
    }
  }

  function storedKey() {
    try {
      return localStorage.getItem(KEY_STORE) || "";
    } catch (_) {
      return "";
    }
  }

  // fetch() of a /v1 path with the stored key; 304 passes, 401 asks for a key, other errors
  // throw ApiError with the API's {"error": {code, message, param}}.
  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    const key = storedKey();
    if (key) headers.set("Authorization", `Bearer ${key}`);
    if (options.body !== undefined) headers.set("Content-Type", "application/json");
    let response;
    try {
      response = await fetch(path, {
        method: options.method || "GET",
        headers,
        body: options.body,
        cache: "no-store",
      });
    } catch (error) {
      throw new Unreachable(String(error));
    }
    if (response.status === 401) {
      askForKey(
        key
          ? "The stored API key was refused (unknown or revoked): enter another."
          : "This service needs an API key.",
      );
      throw new NeedsKey();
    }
    if (!response.ok && response.status !== 304) {
      let body = null;
      try {
        body = await response.json();
      } catch (_) {
        // not the API's error shape
      }
      throw new ApiError(response.status, body);
    }
    clearNotice("unreachable");
    return response;
  }

  function showNotice(text, kind) {
    notice.textContent = text;
    notice.dataset.kind = kind || "error";
    notice.hidden = false;
  }

  function clearNotice(kind) {
    if (!kind || notice.dataset.kind === kind) notice.hidden = true;
  }

  // What a failed poll shows: nothing more for a missing key (the key panel is open).
  function reportError(error) {
    if (error instanceof NeedsKey) return;
    if (error instanceof Unreachable) {
      showNotice("Cannot reach the service; retrying.", "unreachable");
    } else if (error instanceof ApiError) {
      showNotice(`${error.code}: ${error.message}`, "error");
    } else {
      showNotice(String(error), "error");
      console.error(error);
    }
  }

  function askForKey(reason) {
    keyReason.textContent = reason;
    keyPanel.hidden = false;
    keyInput.focus();
  }

  keyPanel.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    localStorage.setItem(KEY_STORE, key);
    keyInput.value = "";
    keyPanel.hidden = true;
    route();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    keyPanel.hidden = true;
    route();
  });
  document.getElementById("key-close").addEventListener("click", () => {
    keyPanel.hidden = true;
  });
  document.getElementById("key-button").addEventListener("click", () => {
    askForKey(storedKey() ? "A key is stored: enter another to replace it." : "Enter an API key.");
  });

  // Calls fn every `ms` while the view is shown, until it returns false or needs a key.
  function every(view, ms, fn) {
    const tick = async () => {
      if (!view.alive) return;
      let again = true;
      try {
        again = (await fn()) !== false;
      } catch (error) {
        reportError(error);
        again = !(error instanceof NeedsKey);
      }
      if (view.alive && again) view.timer = setTimeout(tick, ms);
    };
    tick();
  }

  // --- shared pieces ----------------------------------------------------------------------------

  function statusBadge(status) {
    return el("span", { class: `status status-${status}` }, status);
  }

  function progressBar(fraction) {
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

  // --- #/ : the job list ------------------------------------------------------------------------

  function listView(view) {
    const filter = el(
      "select",
      { id: "status-filter", "aria-label": "status" },
      el("option", { value: "" }, "all statuses"),
      ...["queued", "running", "paused", "succeeded", "failed", "cancelled"].map((s) =>
        el("option", { value: s }, s),
      ),
    );
    const body = el("tbody");
    const footer = el("p", { class: "hint" });
    replace(
      viewRoot,
      el(
        "div",
        { class: "title-row" },
        el("h1", {}, "Jobs"),
        filter,
        el("a", { class: "button", href: "#/new" }, "New job"),
      ),
      el(
        "table",
        { class: "jobs" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ["Name", "ID", "Status", "Stage", "Progress", "Created"].map((h) => el("th", {}, h)),
          ),
        ),
        body,
      ),
      footer,
    );
    let etag = null;
    filter.addEventListener("change", () => {
      etag = null;
      body.replaceChildren();
    });
    every(view, LIST_INTERVAL_MS, async () => {
      const query = filter.value ? `&status=${filter.value}` : "";
      const response = await api(`v1/jobs?limit=100${query}`, {
        headers: etag ? { "If-None-Match": etag } : {},
      });
      if (response.status === 304 || !view.alive) return true;
      etag = response.headers.get("ETag");
      const page = await response.json();
      replace(body, page.data.map(jobRow));
      if (!page.data.length) {
        replace(
          body,
          el("tr", {}, el("td", { colspan: 6 }, "No jobs yet. ", el("a", { href: "#/new" }, "Submit one."))),
        );
      }
      footer.textContent = page.has_more ? "The newest 100 jobs." : "";
      return true;
    });
  }

  function jobRow(job) {
    const href = `#/jobs/${encodeURIComponent(job.id)}`;
    return el(
      "tr",
      { "data-job": job.id },
      el("td", {}, el("a", { href }, job.name || "(unnamed)")),
      el("td", { class: "mono" }, el("a", { href }, job.id)),
      el("td", {}, statusBadge(job.status)),
      el("td", {}, job.stage || "—"),
      el("td", {}, progressBar(job.progress && job.progress.fraction)),
      el("td", {}, fmtTime(job.created_at)),
    );
  }

  // --- #/jobs/<id> : one job --------------------------------------------------------------------

  function jobView(view, jobId) {
    const head = el("section", { class: "job-head" }, el("p", {}, "Loading…"));
    const legend = el("div", { class: "legend" });
    const charts = el("div", { class: "charts" });
    const results = el("section", { id: "results", hidden: true });
    const cost = el("section", { id: "cost", hidden: true });
    const artifacts = el("tbody");
    const events = el("tbody");
    const eventsBox = el(
      "div",
      { class: "events" },
      el(
        "table",
        {},
        el("thead", {}, el("tr", {}, ["Time", "Kind", "Message"].map((h) => el("th", {}, h)))),
        events,
      ),
    );
    const spec = el("pre", { class: "spec" });
    replace(
      viewRoot,
      el("p", { class: "crumbs" }, el("a", { href: "#/" }, "← all jobs")),
      head,
      el("section", {}, el("h2", {}, "Curves"), legend, charts),
      results,
      cost,
      el(
        "section",
        {},
        el("h2", {}, "Artifacts"),
        el(
          "table",
          { class: "artifacts" },
          el(
            "thead",
            {},
            el("tr", {}, ["Name", "Format", "Size", "sha256"].map((h) => el("th", {}, h))),
          ),
          artifacts,
        ),
      ),
      el("section", {}, el("h2", {}, "Events"), eventsBox),
      el("details", {}, el("summary", {}, "Spec"), spec),
    );
    replace(artifacts, el("tr", {}, el("td", { colspan: 4 }, "None yet.")));

    const base = `v1/jobs/${encodeURIComponent(jobId)}`;
    let etag = null;
    let job = null;
    let lastEvent = 0;
    let artifactNames = "";
    let finalPass = false;

    every(view, JOB_INTERVAL_MS, async () => {
      let response;
      try {
        response = await api(base, { headers: etag ? { "If-None-Match": etag } : {} });
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          replace(head, el("h1", {}, "No such job"), el("p", {}, `${jobId} does not exist (or belongs to another tenant).`));
          return false;
        }
        throw error;
      }
      const changed = response.status !== 304;
      if (changed) {
        etag = response.headers.get("ETag");
        job = await response.json();
        if (!view.alive) return false;
        renderHead(head, job);
        spec.textContent = JSON.stringify(job.spec, null, 2);
      }
      const finished = FINISHED.has(job.status);
      if (changed || !finished) {
        const metrics = (await (await api(`${base}/metrics`)).json()).data;
        if (!view.alive) return false;
        renderCurves(legend, charts, metrics, job);
        lastEvent = await appendEvents(base, events, eventsBox, lastEvent);
      }
      if (changed) {
        const listing = (await (await api(`${base}/artifacts`)).json()).data;
        const names = listing.map((a) => a.name + a.sha256).join();
        if (names !== artifactNames && view.alive) {
          artifactNames = names;
          renderArtifacts(artifacts, base, listing);
        }
        if (job.result) renderResults(results, job.result);
        if (job.cost && job.cost.estimate) renderCost(cost, job.cost);
      }
      // One more pass after the job has finished (its last events and artifacts), then stop.
      if (finished) {
        if (finalPass) return false;
        finalPass = true;
      }
      return true;
    });
  }

  function renderHead(head, job) {
    const p = job.progress || {};
    const parts = [];
    const finished = FINISHED.has(job.status);
    if (job.stage && (!finished || job.status === "failed")) parts.push(`stage ${job.stage}`);
    if (p.epoch !== null && p.epoch !== undefined && p.epochs) parts.push(`epoch ${p.epoch} / ${p.epochs}`);
    if (!finished && p.eta_seconds !== null && p.eta_seconds !== undefined) {
      parts.push(`ETA ${fmtDuration(p.eta_seconds)}`);
    }
    const times = [`created ${fmtTime(job.created_at)}`];
    if (job.started_at) times.push(`started ${fmtTime(job.started_at)}`);
    if (job.finished_at) times.push(`finished ${fmtTime(job.finished_at)}`);
    if (job.attempt > 1) times.push(`attempt ${job.attempt}`);
    replace(
      head,
      el("h1", {}, job.name || job.id, " ", statusBadge(job.status)),
      el("p", { class: "mono" }, job.id),
      el("div", { class: "progress-row" }, progressBar(p.fraction), el("span", { id: "stage-line" }, parts.join(" · "))),
      el("p", { class: "hint" }, times.join(" · ")),
      job.error &&
        el(
          "div",
          { class: "error-box" },
          el("strong", {}, job.error.code),
          job.error.stage ? ` in ${job.error.stage}` : "",
          ": ",
          job.error.message,
        ),
    );
  }

  async function appendEvents(base, tbody, box, after) {
    let cursor = after;
    for (;;) {
      const page = await (await api(`${base}/events?after=${cursor}&limit=1000`)).json();
      if (!page.data.length) break;
      const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
      for (const event of page.data) {
        tbody.append(
          el(
            "tr",
            { class: `event event-${event.kind}` },
            el("td", { class: "mono", title: event.created_at }, fmtClock(event.created_at)),
            el("td", {}, event.kind),
            el("td", {}, event.message),
          ),
        );
        cursor = event.id;
      }
      if (atBottom) box.scrollTop = box.scrollHeight;
      if (!page.has_more) break;
    }
    return cursor;
  }

  function renderArtifacts(tbody, base, listing) {
    if (!listing.length) {
      replace(tbody, el("tr", {}, el("td", { colspan: 4 }, "None yet.")));
      return;
    }
    replace(
      tbody,
      listing.map((artifact) => {
        const link = el(
          "a",
          { href: `${base}/artifacts/${encodeURIComponent(artifact.name)}`, download: artifact.name },
          artifact.name,
        );
        link.addEventListener("click", (event) => {
          event.preventDefault();
          download(link, artifact.name);
        });
        return el(
          "tr",
          {},
          el("td", {}, link),
          el("td", {}, artifact.format),
          el("td", {}, fmtBytes(artifact.bytes)),
          el("td", { class: "mono", title: artifact.sha256 }, artifact.sha256.slice(0, 16) + "…"),
        );
      }),
    );
  }

  // Downloads need the API key too: fetched as a blob, then saved through an object URL.
  async function download(link, name) {
    link.classList.add("busy");
    try {
      const blob = await (await api(link.getAttribute("href"))).blob();
      const url = URL.createObjectURL(blob);
      const save = el("a", { href: url, download: name, hidden: true });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      reportError(error);
    } finally {
      link.classList.remove("busy");
    }
  }

  function renderResults(section, result) {
    const models = ["teacher", "student", "baseline"].filter((m) => result[m]);
    const testKeys = [];
    for (const m of models) {
      for (const key of Object.keys(result[m])) {
        if (key.startsWith("test_") && !testKeys.includes(key)) testKeys.push(key);
      }
    }
    const header = ["Model", "Arch", "Params", "Size", ...testKeys.map(label), "CPU latency (ms)"];
    const rows = models.map((m) => {
      const r = result[m];
      return el(
        "tr",
        { "data-model": m },
        el("th", {}, swatch(m), m),
        el("td", {}, r.arch || r.source || "—"),
        el("td", {}, fmtNumber(r.params)),
        el("td", {}, fmtBytes(r.bytes)),
        testKeys.map((k) => el("td", {}, fmtNumber(r[k]))),
        el("td", {}, fmtNumber(r.latency_ms_cpu)),
      );
    });
    const compression = result.compression || {};
    const compressionRows = Object.entries(compression)
      .filter(([key]) => key !== "kd_gain_unit")
      .map(([key, value]) =>
        el(
          "tr",
          { "data-key": key },
          el("th", {}, COMPRESSION_LABELS[key] || label(key)),
          el("td", {}, compressionValue(key, value, compression)),
        ),
      );
    replace(
      section,
      el("h2", {}, "Results"),
      el(
        "table",
        { class: "results" },
        el("thead", {}, el("tr", {}, header.map((h) => el("th", {}, h)))),
        el("tbody", {}, rows),
      ),
      el("h3", {}, "Compression"),
      el("table", { class: "compression" }, el("tbody", {}, compressionRows)),
    );
    section.hidden = false;
  }

  // The job's estimate (made after validate, on its device) and, once it succeeded, what it
  // did: seconds and optimiser steps per stage, FLOPs.
  function renderCost(section, cost) {
    const estimate = cost.estimate;
    const actual = cost.actual;
    const kind = actual ? actual.device : Object.keys(estimate.wall_seconds)[0];
    const device = estimate.wall_seconds[kind];
    if (!device) return;
    const work = estimate.work;
    const seconds = (value) => (value === null || value === undefined ? "—" : value.toFixed(1));
    const row = (name, est, act, estSteps, actSteps, flops) =>
      el(
        "tr",
        { "data-stage": name },
        el("th", {}, name),
        el("td", {}, seconds(est)),
        el("td", {}, seconds(act)),
        el("td", {}, estSteps ? fmtNumber(estSteps) : "—"),
        el("td", {}, estSteps && actSteps !== undefined ? fmtNumber(actSteps) : "—"),
        el("td", {}, fmtFlops(flops)),
      );
    const rows = Object.entries(device.stages).map(([name, est]) => {
      const stage = work.stages[name];
      return row(
        name,
        est,
        actual ? actual.stages[name] : null,
        stage ? stage.steps : 0,
        actual ? actual.steps[name] : undefined,
        stage ? stage.flops : null,
      );
    });
    rows.push(
      row(
        "total",
        device.total,
        actual ? actual.total : null,
        work.teacher_steps + work.student_steps,
        actual ? actual.teacher_steps + actual.student_steps : undefined,
        work.flops,
      ),
    );
    const header = ["Stage", "Estimated s", "Actual s", "Estimated steps", "Actual steps", "FLOPs"];
    replace(
      section,
      el("h2", {}, "Estimate vs actual"),
      el(
        "p",
        { class: "hint" },
        `${device.device}; soft labels ${fmtBytes(work.soft_label_bytes)} estimated` +
          (actual ? `, ${fmtBytes(actual.soft_label_bytes)} stored` : ""),
      ),
      el(
        "table",
        { class: "cost" },
        el("thead", {}, el("tr", {}, header.map((h) => el("th", {}, h)))),
        el("tbody", {}, rows),
      ),
    );
    section.hidden = false;
  }

  function fmtFlops(n) {
    if (n === null || n === undefined) return "—";
    for (const [unit, scale] of [["P", 1e15], ["T", 1e12], ["G", 1e9], ["M", 1e6]]) {
      if (n >= scale) return `${(n / scale).toFixed(2)} ${unit}`;
    }
    return String(n);
  }

  function compressionValue(key, value, compression) {
    if (typeof value !== "number") return fmtNumber(value);
    if (key.endsWith("_ratio") || key.includes("speedup")) return `${fmtNumber(value)}×`;
    if (key === "accuracy_retention") return `${(value * 100).toFixed(2)}%`;
    if (key === "kd_gain") {
      const unit = compression.kd_gain_unit;
      const signed = value > 0 ? `+${fmtNumber(value)}` : fmtNumber(value);
      return unit
        ? `${signed} ${unit.replace(/_/g, " ")} (baseline − student)`
        : `${signed} test accuracy (student − baseline)`;
    }
    return fmtNumber(value);
  }

  function swatch(name) {
    const series = SERIES.find((s) => s.name === name);
    const mark = el("span", { class: "swatch" });
    if (series) mark.style.background = series.color;
    return mark;
  }

  // --- curves -----------------------------------------------------------------------------------

  // The validation metric to plot: accuracy for classifiers, bits per byte (or loss) otherwise.
  function validationMetric(rows) {
    for (const [key, title] of [
      ["val_accuracy", "Validation accuracy"],
      ["val_bits_per_byte", "Validation bits per byte"],
      ["val_loss", "Validation loss"],
    ]) {
      if (rows.some((r) => typeof r.values[key] === "number")) return [key, title];
    }
    return ["val_accuracy", "Validation accuracy"];
  }

  function renderCurves(legend, charts, rows, job) {
    const byStage = {};
    for (const row of rows) (byStage[row.stage] = byStage[row.stage] || []).push(row);
    const points = (stage, key) =>
      (byStage[stage] || [])
        .filter((r) => typeof r.values[key] === "number" && Number.isFinite(r.values[key]))
        .map((r) => [r.epoch, r.values[key]]);
    const [valKey, valTitle] = validationMetric(rows);
    const specs = [
      { id: "loss", title: "Training loss", key: "train_loss", stages: SERIES, log: true },
      { id: "validation", title: valTitle, key: valKey, stages: SERIES },
      { id: "temperature", title: "Temperature (distillation)", key: "temperature", stages: SERIES.filter((s) => s.name === "student") },
    ];
    replace(
      legend,
      SERIES.map((s) => {
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
  function niceStep(lo, hi, count) {
    const raw = (hi - lo) / count;
    const magnitude = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / magnitude;
    return magnitude * (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10);
  }

  // A tick's label, short enough for the axis: "0.25", "12", "2e+10".
  function tickLabel(value, step) {
    const abs = Math.abs(value);
    if (abs >= 1e5 || (abs > 0 && abs < 1e-3)) {
      return value.toExponential(1).replace(".0e", "e");
    }
    const decimals = step ? Math.min(6, Math.max(0, -Math.floor(Math.log10(step)))) : 3;
    return step ? value.toFixed(decimals) : String(Number(value.toPrecision(3)));
  }

  // The y axis for `values`: {lo, hi} in plotted units, ticks [value, label], and to(value).
  // Linear, or logarithmic (ticks at 1, 2 and 5 times powers of ten) when `log` and all > 0.
  function yAxis(values, log) {
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

  const W = 420;
  const H = 240;
  const M = { left: 54, right: 14, top: 12, bottom: 36 };

  function lineChart(id, title, series, log) {
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

  // --- #/new : the submit form ------------------------------------------------------------------

  function newJobView() {
    const text = el("textarea", { id: "spec-input", rows: 22, spellcheck: "false", "aria-label": "job spec" });
    // The draft outlives re-rendering (after an API key is entered) and reloads of the tab.
    text.value = sessionStorage.getItem(DRAFT_STORE) || EXAMPLE_SPEC;
    text.addEventListener("input", () => sessionStorage.setItem(DRAFT_STORE, text.value));
    const problem = el("div", { id: "submit-error", class: "error-box", hidden: true });
    const submit = el("button", { type: "submit" }, "Submit");
    const form = el(
      "form",
      { id: "submit-form" },
      el(
        "p",
        {},
        "A job spec as JSON: the README's spec table says what each field means, and the ",
        el("a", { href: "docs#/catalog", target: "_blank", rel: "noopener" }, "catalog"),
        " (GET /v1/catalog/models, datasets, methods) what it may name.",
      ),
      text,
      problem,
      el("p", {}, submit),
    );
    replace(viewRoot, el("h1", {}, "New job"), form);
    // One Idempotency-Key per distinct body: a double click submits one job.
    let sentBody = null;
    let idempotencyKey = null;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      problem.hidden = true;
      const body = text.value;
      try {
        JSON.parse(body);
      } catch (error) {
        showProblem(problem, "invalid JSON", error.message, null);
        return;
      }
      if (body !== sentBody) {
        sentBody = body;
        idempotencyKey = randomKey();
      }
      submit.disabled = true;
      try {
        const response = await api("v1/jobs", {
          method: "POST",
          body,
          headers: { "Idempotency-Key": idempotencyKey },
        });
        const job = await response.json();
        sessionStorage.removeItem(DRAFT_STORE);
        location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
      } catch (error) {
        if (error instanceof ApiError) {
          showProblem(problem, error.code, error.message, error.param);
          // An error created nothing: the same body may be sent again with a new key.
          sentBody = null;
        } else {
          reportError(error);
        }
      } finally {
        submit.disabled = false;
      }
    });
  }

  function showProblem(box, code, message, param) {
    replace(
      box,
      el("strong", {}, code),
      ": ",
      message,
      param ? el("div", { class: "param" }, "field: ", el("code", {}, param)) : null,
    );
    box.hidden = false;
  }

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "dashboard-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // --- routing ----------------------------------------------------------------------------------

  function route() {
    current.alive = false;
    clearTimeout(current.timer);
    clearNotice();
    const view = { alive: true, timer: 0 };
    current = view;
    const hash = location.hash || "#/";
    const job = hash.match(/^#\/jobs\/([^/?#]+)$/);
    if (job) {
      jobView(view, decodeURIComponent(job[1]));
    } else if (hash === "#/new") {
      newJobView();
    } else {
      listView(view);
    }
  }

  window.addEventListener("hashchange", route);
  route();
})();
