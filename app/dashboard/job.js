// #/jobs/<id>: one job, polled while shown: its head (status, stage, progress), curves,
// results, estimate vs actual, artifacts (downloaded with the key), events and spec.

import { ApiError, api, every, reportError, taskCatalog, trainingSeries } from "./api.js";
import { renderCurves } from "./charts.js";
import {
  el,
  fmtBytes,
  fmtClock,
  fmtDuration,
  fmtFlops,
  fmtNumber,
  fmtTime,
  label,
  progressBar,
  replace,
  statusBadge,
  swatch,
  viewRoot,
} from "./dom.js";

const JOB_INTERVAL_MS = 1000;
export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
// What every job's compression says; the quality it keeps is the task's (its catalog entry).
const COMPRESSION_LABELS = {
  param_ratio: "parameters, teacher / student",
  size_ratio: "size, teacher / student",
  latency_speedup_cpu: "CPU latency, teacher / student",
  kd_gain: "distillation gain over the baseline",
};
// The diagnosis's verdict, by its `helped` (true, false, null: no baseline to judge by).
const VERDICTS = {
  true: "Distillation helped: the student beats the same student trained alone.",
  false: "Distillation did not help: the student does not beat the same student trained alone.",
  null: "No baseline was trained, so whether distillation helped is unknown.",
};


export function jobView(view, jobId) {
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
    const task = (await taskCatalog())[job.spec.task];
    const series = await trainingSeries();
    if (changed || !finished) {
      const metrics = (await (await api(`${base}/metrics`)).json()).data;
      if (!view.alive) return false;
      renderCurves(legend, charts, metrics, job, task, series);
      lastEvent = await appendEvents(base, events, eventsBox, lastEvent);
    }
    if (changed) {
      const listing = (await (await api(`${base}/artifacts`)).json()).data;
      const names = listing.map((a) => a.name + a.sha256).join();
      if (names !== artifactNames && view.alive) {
        artifactNames = names;
        renderArtifacts(artifacts, base, listing);
      }
      if (job.result) renderResults(results, job.result, task, base);
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

export function renderHead(head, job) {
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

export async function appendEvents(base, tbody, box, after) {
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

export function renderArtifacts(tbody, base, listing) {
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
export async function download(link, name) {
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

export function renderResults(section, result, task, base) {
  const models = ["teacher", "student", "baseline", "random_init"].filter((m) => result[m]);
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
  const labels = { ...COMPRESSION_LABELS };
  if (task && task.quality) labels[task.quality.key] = task.quality.title;
  const compressionRows = Object.entries(compression)
    .filter(([key]) => key !== "kd_gain_unit")
    .map(([key, value]) =>
      el(
        "tr",
        { "data-key": key },
        el("th", {}, labels[key] || label(key)),
        el("td", {}, compressionValue(key, value, compression, task)),
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
    result.diagnosis ? [el("h3", {}, "Diagnosis"), diagnosisBlock(result.diagnosis)] : null,
    result.frontier ? frontierBlock(result.frontier, base) : null,
  );
  section.hidden = false;
}

// The frontier: every model the job produced, timed and scored in one runtime; its table, and
// the job's frontier.svg (drawn by the worker: the CLI draws the same) fetched with the key.
const FRONTIER_COLUMNS = [
  ["params", "Params", fmtNumber],
  ["bytes", "Size", fmtBytes],
  ["latency_ms_p50", "p50 ms (batch 1)", fmtNumber],
  ["latency_ms_p95", "p95 ms (batch 1)", fmtNumber],
  ["throughput_per_s_batch32", "per s (batch 32)", fmtNumber],
];

function frontierBlock(frontier, base) {
  const metric = `test_${frontier.metric}`;
  const columns = [
    ...FRONTIER_COLUMNS,
    [metric, label(metric), fmtNumber],
    [`${frontier.metric}_pct_of_teacher`, "% of teacher", fmtNumber],
    ["top1_agreement", "top-1 = teacher", fmtNumber],
  ];
  const plot = el("div", { class: "frontier-plot" });
  if (base) {
    api(`${base}/artifacts/frontier.svg`)
      .then((response) => response.blob())
      .then((blob) => {
        const image = el("img", { alt: "size and latency against the test metric, per model" });
        // Served as a download (octet-stream); an <img> draws SVG only when typed so (and
        // runs no script in it).
        image.src = URL.createObjectURL(new Blob([blob], { type: "image/svg+xml" }));
        replace(plot, image);
      })
      .catch(() => replace(plot, el("p", {}, "No frontier.svg for this job.")));
  }
  return [
    el("h3", {}, "Frontier"),
    el(
      "table",
      { class: "results frontier" },
      el("thead", {}, el("tr", {}, ["Model", ...columns.map((c) => c[1])].map((h) => el("th", {}, h)))),
      el(
        "tbody",
        {},
        frontier.rows.map((row) =>
          el(
            "tr",
            { "data-frontier": row.model },
            el("th", {}, swatch(row.model), row.model),
            columns.map(([key, , fmt]) => el("td", {}, row[key] === null || row[key] === undefined ? "—" : fmt(row[key]))),
          ),
        ),
      ),
    ),
    el("p", { class: "hint" }, `Timed in ${frontier.runtime}, ${frontier.threads} thread, on ${frontier.cpu}.`),
    plot,
  ];
}

// Whether distillation helped and, where it could not, why: each finding's code and its
// message, which says what to change.
function diagnosisBlock(diagnosis) {
  const findings = diagnosis.findings || [];
  return el(
    "div",
    { class: "diagnosis", "data-helped": String(diagnosis.helped) },
    el("p", { class: "verdict" }, VERDICTS[String(diagnosis.helped)]),
    findings.length
      ? el(
          "ul",
          { class: "findings" },
          findings.map((f) =>
            el("li", { "data-code": f.code }, el("code", {}, f.code), " ", f.message),
          ),
        )
      : null,
  );
}

// The job's estimate (made after validate, on its device) and, once it succeeded, what it
// did: seconds and optimiser steps per stage, FLOPs.
export function renderCost(section, cost) {
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

// A compression value as read: ratios with ×, retentions as percentages, the gain in the task's
// test metric (points of it, or its unit when lower is better).
function compressionValue(key, value, compression, task) {
  if (typeof value !== "number") return fmtNumber(value);
  if (key.endsWith("_ratio") || key.includes("speedup")) return `${fmtNumber(value)}×`;
  if (key.endsWith("_retention")) return `${(value * 100).toFixed(2)}%`;
  if (key === "kd_gain") {
    const metric = (task && task.test_metric) || { key: "test_metric", higher_is_better: true };
    const signed = value > 0 ? `+${fmtNumber(value)}` : fmtNumber(value);
    const unit = (compression.kd_gain_unit || label(metric.key)).replace(/_/g, " ");
    return metric.higher_is_better
      ? `${signed} ${unit} (student − baseline)`
      : `${signed} ${unit} (baseline − student)`;
  }
  return fmtNumber(value);
}
