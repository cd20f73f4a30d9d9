// The /v1 API as the dashboard calls it: the sign-in, errors in the API's shape, the
// notice line, the key panel, polling while a view is shown, and the task catalog (what each
// task's results show).

// The key lives in an HttpOnly cookie set by POST /v1/session: no script, this one included,
// can read it. It counts only on requests with SESSION_HEADER (app/api/deps.py). Dashboards
// before it kept the key in localStorage: that copy is removed.
const SESSION_HEADER = "X-Distillery-Session";
const SIGNED_IN = "distillery.signedIn"; // "1" after a sign-in: no secret, only the prompt's text
try {
  localStorage.removeItem("distillery.apiKey");
} catch (_) {
  // storage disabled
}
const notice = document.getElementById("notice");
const keyPanel = document.getElementById("key-panel");
const keyInput = document.getElementById("key-input");
const keyReason = document.getElementById("key-reason");

export class NeedsKey extends Error {}
export class Unreachable extends Error {}
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `http_${status}`;
    this.param = error.param || null;
  }
}

function signedIn() {
  try {
    return localStorage.getItem(SIGNED_IN) === "1";
  } catch (_) {
    return false;
  }
}

function setSignedIn(yes) {
  try {
    if (yes) localStorage.setItem(SIGNED_IN, "1");
    else localStorage.removeItem(SIGNED_IN);
  } catch (_) {
    // storage disabled: only the prompt's wording suffers
  }
}

// fetch() of a /v1 path with the browser's session; 304 passes, 401 asks for a key, other errors
// throw ApiError with the API's {"error": {code, message, param}}.
export async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set(SESSION_HEADER, "1");
  if (options.body !== undefined) headers.set("Content-Type", "application/json");
  let response;
  try {
    response = await fetch(path, {
      method: options.method || "GET",
      headers,
      body: options.body,
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch (error) {
    throw new Unreachable(String(error));
  }
  if (response.status === 401) {
    askForKey(
      signedIn()
        ? "The API key this browser holds was refused (revoked?): enter another."
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

export function showNotice(text, kind) {
  notice.textContent = text;
  notice.dataset.kind = kind || "error";
  notice.hidden = false;
}

export function clearNotice(kind) {
  if (!kind || notice.dataset.kind === kind) notice.hidden = true;
}

// What a failed poll shows: nothing more for a missing key (the key panel is open).
export function reportError(error) {
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

export function askForKey(reason) {
  keyReason.textContent = reason;
  keyPanel.hidden = false;
  keyInput.focus();
}

// The key panel's buttons; `onChange` re-renders the view once the key changed.
export function initKeyPanel(onChange) {
  keyPanel.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    let response;
    try {
      response = await fetch("/v1/session", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ key }),
        credentials: "same-origin",
      });
    } catch (error) {
      keyReason.textContent = "Cannot reach the service; try again.";
      return;
    }
    if (!response.ok) {
      keyReason.textContent = "That key was refused (unknown or revoked): enter another.";
      keyInput.select();
      return;
    }
    setSignedIn(true);
    keyInput.value = "";
    keyPanel.hidden = true;
    onChange();
  });
  document.getElementById("key-forget").addEventListener("click", async () => {
    try {
      await fetch("/v1/session", { method: "DELETE", credentials: "same-origin" });
    } catch (_) {
      // the cookie stays until the service answers; the prompt says so next time
    }
    setSignedIn(false);
    keyPanel.hidden = true;
    onChange();
  });
  document.getElementById("key-close").addEventListener("click", () => {
    keyPanel.hidden = true;
  });
  document.getElementById("key-button").addEventListener("click", () => {
    askForKey(
      signedIn() ? "This browser holds a key: enter another to replace it." : "Enter an API key.",
    );
  });
}

// Calls fn every `ms` while the view is shown, until it returns false or needs a key.
export function every(view, ms, fn) {
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

const catalogs = {};

// A kind of the catalog (GET /v1/catalog/<kind>), fetched once: each entry's capabilities by
// name, in the catalog's order.
async function catalog(kind) {
  if (!(kind in catalogs)) {
    const listing = (await (await api(`v1/catalog/${kind}`)).json()).data;
    catalogs[kind] = Object.fromEntries(listing.map((entry) => [entry.name, entry.capabilities]));
  }
  return catalogs[kind];
}

// Each task's test and validation metrics and what its compression says of quality.
export function taskCatalog() {
  return catalog("tasks");
}

// The curves' series: a stage that trains a model (its catalog entry's `trains`), in order.
export async function trainingSeries() {
  const stages = await catalog("stages");
  return Object.entries(stages)
    .filter(([, stage]) => stage.trains)
    .map(([name, stage]) => ({ name: stage.trains, stage: name }));
}
