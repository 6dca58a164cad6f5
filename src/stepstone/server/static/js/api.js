// The REST API under /v1, relative to the path the dashboard is served at (read once), so a
// dashboard mounted under a prefix calls its own API.
export const TOKEN_KEY = "stepstone.token";
export const BASE = new URL(".", location.href).pathname.replace(/\/$/, "");

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

let unauthorized = () => {};
export function onUnauthorized(handler) { unauthorized = handler; }

export function setLive(ok) {
  const el = document.getElementById("live");
  el.classList.toggle("offline", !ok);
  el.textContent = ok ? "live" : "offline";
}

export async function api(path, options) {
  const opts = options || {};
  const headers = { accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  let body;
  if (opts.body !== undefined) {
    headers["content-type"] = "application/json";
    body = typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
  }
  let response;
  try {
    response = await fetch(BASE + path, { method: opts.method || "GET", headers, body, cache: "no-store" });
  } catch (err) {
    setLive(false);
    throw new ApiError(`the server did not answer (${err.message})`, 0);
  }
  setLive(true);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401) {
    unauthorized(token ? "That token was not accepted." : "");
    throw new ApiError("sign in first", 401);
  }
  if (!response.ok) {
    throw new ApiError((data && data.error) || `HTTP ${response.status}`, response.status);
  }
  return data;
}

export const post = (path, body) => api(path, { method: "POST", body: body || {} });
export const enc = encodeURIComponent;

// the value, or null when the API answers 404 (asked once: a missing id is not polled)
export async function found(path) {
  try {
    return await api(path);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

export async function health() {
  const response = await fetch(`${BASE}/health`, { cache: "no-store" });
  return response.json();
}
