// The /v1 API as the dashboard calls it: the stored API key, errors in the API's shape, the
// notice line, the key panel, polling while a view is shown, and the task catalog (what each
// task's results show).

const KEY_STORE = "distillery.apiKey";
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

export function storedKey() {
  try {
    return localStorage.getItem(KEY_STORE) || "";
  } catch (_) {
    return "";
  }
}

// fetch() of a /v1 path with the stored key; 304 passes, 401 asks for a key, other errors
// throw ApiError with the API's {"error": {code, message, param}}.
export async function api(path, options = {}) {
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
  keyPanel.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return;
    localStorage.setItem(KEY_STORE, key);
    keyInput.value = "";
    keyPanel.hidden = true;
    onChange();
  });
  document.getElementById("key-forget").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    keyPanel.hidden = true;
    onChange();
  });
  document.getElementById("key-close").addEventListener("click", () => {
    keyPanel.hidden = true;
  });
  document.getElementById("key-button").addEventListener("click", () => {
    askForKey(storedKey() ? "A key is stored: enter another to replace it." : "Enter an API key.");
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
