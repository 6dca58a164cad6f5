// Pages by URL hash (#/runs?status=failed): each page is a function of (parts, params) that
// fills #main and may return {stop()}; polling stops when the page changes.
import { clearToast, fill, h, main } from "./dom.js";
import { tick } from "./format.js";

const POLL_MS = 1000;
let current = null;
let paused = false;
let pages = [];

export function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(query || "") };
}

export function hashFor(path, values) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v) query.set(k, v);
  const text = query.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

// [section, hasId, page]: the first whose section and id match the URL runs
export function register(table) { pages = table; }

export function stop() {
  if (current && current.stop) current.stop();
  current = null;
}

export function pause() { stop(); paused = true; }

export function route() {
  stop();
  paused = false;
  clearToast();
  const { parts, params } = parseHash();
  const section = parts[0] || "runs";
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === section);
  }
  fill(main());
  const entry = pages.find(([name, withId]) => name === section && withId === Boolean(parts[1]));
  if (!entry) {
    main().append(h("div", { class: "notice bad" }, "There is no such page."));
    return;
  }
  current = entry[2](parts[1], params) || null;
}

// calls fn now and about once a second while the page lasts; a hidden tab does not poll
export function poller(fn) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    if (!document.hidden) {
      try {
        if ((await fn()) === false) stopped = true; // the page has nothing more to poll
      } catch (err) {
        if (err.status !== 401) console.warn(err);
      }
      tick(main());
    }
    if (!stopped && !paused) timer = setTimeout(run, POLL_MS);
  };
  run();
  return { stop() { stopped = true; clearTimeout(timer); } };
}
