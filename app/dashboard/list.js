// #/ : the job list, newest first, polled with its ETag while shown.

import { api, every } from "./api.js";
import { el, fmtTime, progressBar, replace, statusBadge, viewRoot } from "./dom.js";

const LIST_INTERVAL_MS = 2000;

export function listView(view) {
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

export function jobRow(job) {
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
