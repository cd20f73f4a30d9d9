// The Distillery dashboard: a job list, a job page with live curves, and a submit form.
// Plain JavaScript ES modules with no libraries and no build step; it talks to the /v1 API with
// fetch and draws its charts as inline SVG. Routes live in the URL's hash: #/, #/jobs/<id>,
// #/new. One module per view (list, job, submit) over the shared api, dom and charts modules.

import { clearNotice, initKeyPanel } from "./api.js";
import { jobView } from "./job.js";
import { listView } from "./list.js";
import { newJobView } from "./submit.js";

let current = { alive: false, timer: 0 };

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

initKeyPanel(route);
window.addEventListener("hashchange", route);
route();
