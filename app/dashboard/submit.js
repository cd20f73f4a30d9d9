// #/new : the submit form: a job spec as JSON, kept as a draft, sent once per distinct body
// (an Idempotency-Key each), the API's error shown with the field at fault.

import { ApiError, api, reportError } from "./api.js";
import { el, replace, viewRoot } from "./dom.js";

const DRAFT_STORE = "distillery.draftSpec";
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

export function newJobView() {
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
      "A job spec as JSON: the README's spec table says what each field means, and the " +
        "catalog (GET /v1/catalog/models, datasets, methods) what it may name.",
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

export function showProblem(box, code, message, param) {
  replace(
    box,
    el("strong", {}, code),
    ": ",
    message,
    param ? el("div", { class: "param" }, "field: ", el("code", {}, param)) : null,
  );
  box.hidden = false;
}

export function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return "dashboard-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
