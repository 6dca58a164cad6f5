// The runs list: filters in the URL (shareable), live rows, and actions on many runs at once.
import { api, enc, found, post } from "../api.js";
import { fill, h, main } from "../dom.js";
import { hashFor, poller } from "../router.js";
import { RUN_COLUMNS, STATUSES, eventLink, runRow } from "../widgets.js";

const PAGE = 50;
const BULK_CHUNK = 10; // runs per bulk request: the progress count moves by this much
const SELECT_ALL_MAX = 10000;
const RANGES = { "": "Any time", "15m": "Last 15 minutes", "1h": "Last hour", "1d": "Last day", custom: "Custom range" };
const RANGE_SECONDS = { "15m": 900, "1h": 3600, "1d": 86400 };
const FILTERS = ["event", "function", "status", "range", "from", "to", "if", "q"];

// the filters of the URL as /v1/runs query parameters (times relative to now, so they slide)
export function runsQuery(filters) {
  const query = new URLSearchParams();
  if (filters.status) query.set("status", filters.status);
  if (filters.function) query.set("function", filters.function);
  if (filters.event) query.set("event", filters.event);
  if (filters.if) query.set("if", filters.if);
  if (RANGE_SECONDS[filters.range]) query.set("created_after", String(Date.now() / 1000 - RANGE_SECONDS[filters.range]));
  if (filters.range === "custom") {
    if (filters.from) query.set("created_after", String(new Date(filters.from).getTime() / 1000));
    if (filters.to) query.set("created_before", String(new Date(filters.to).getTime() / 1000));
  }
  return query;
}

export function runsPage(_id, params) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, (params.get(k) || "").trim()]));
  let limit = PAGE;
  // A search with `if` may answer a short page and a cursor (the server reads a bounded
  // number of runs per request): "Load more" then reads on from the cursor, and keeps the
  // older runs it found below the live first page.
  const older = [];
  let olderCursor; // undefined: not read on yet; null: nothing older
  let firstCursor = null;
  let seen = null; // run ids shown so far: rows added later are highlighted
  let lastKey = "";
  let search = null; // what `q` turned out to be, found once: {kind: "run"|"event"|"name", ...}
  let visible = [];
  const selected = new Set();
  let everything = false; // "all that match" is selected

  const go = (changes) => { location.hash = hashFor("/runs", { ...filters, ...changes }); };

  // -- the filter bar ------------------------------------------------------------------
  const select = (id, label, options, value, name) => h("select", { id, "aria-label": label,
    onchange: (e) => go({ [name]: e.target.value }) },
  options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  const statusSelect = select("status-filter", "Status", [["", "All statuses"], ...STATUSES.map((s) => [s, s])], filters.status, "status");
  const functionSelect = select("function-filter", "Function", [["", "All functions"],
    ...(filters.function ? [[filters.function, filters.function]] : [])], filters.function, "function");
  const rangeSelect = h("select", { id: "range-filter", "aria-label": "Time range",
    onchange: (e) => { if (e.target.value === "custom") { custom.hidden = false; } else { go({ range: e.target.value, from: "", to: "" }); } } },
  Object.entries(RANGES).map(([v, text]) => h("option", { value: v, selected: v === filters.range }, text)));
  const fromInput = h("input", { type: "datetime-local", id: "range-from", "aria-label": "From", value: filters.from, step: "1" });
  const toInput = h("input", { type: "datetime-local", id: "range-to", "aria-label": "To", value: filters.to, step: "1" });
  const custom = h("span", { class: "custom-range", hidden: filters.range !== "custom" }, fromInput, "–", toInput,
    h("button", { class: "btn small", type: "button", id: "range-apply",
      onclick: () => go({ range: "custom", from: fromInput.value, to: toInput.value }) }, "Apply"));
  const eventInput = h("input", { type: "search", id: "event-filter", value: filters.event,
    placeholder: "Event name (* matches anything)", "aria-label": "Event name" });
  const celInput = h("input", { type: "search", id: "cel-filter", class: "mono", value: filters.if,
    placeholder: 'CEL over the event: event.data.account == "acme"', "aria-label": "CEL expression" });
  const searchInput = h("input", { type: "search", id: "search", value: filters.q,
    placeholder: "Run id, event id or event name", "aria-label": "Search" });
  const submit = (e) => {
    e.preventDefault();
    go({ event: eventInput.value.trim(), if: celInput.value.trim(), q: searchInput.value.trim() });
  };
  const active = FILTERS.some((k) => filters[k]);
  const toolbar = h("form", { class: "filters", id: "run-filters", onsubmit: submit },
    h("div", { class: "toolbar" }, searchInput, statusSelect, functionSelect, rangeSelect, custom),
    h("div", { class: "toolbar" }, eventInput, celInput,
      h("button", { class: "btn small primary", type: "submit" }, "Search"),
      active ? h("a", { href: "#/runs", class: "btn small", id: "clear-filters" }, "Clear") : null));

  // -- selection and bulk actions ---------------------------------------------------------
  const bulkBar = h("div", { class: "bulk", id: "bulk", hidden: true });
  const progress = h("div", { id: "bulk-progress", class: "notice", hidden: true });
  const allBox = h("input", { type: "checkbox", id: "select-page", "aria-label": "Select the runs shown",
    onchange: (e) => {
      everything = false;
      for (const run of visible) { if (e.target.checked) selected.add(run.id); else selected.delete(run.id); }
      syncBoxes();
    } });

  function syncBoxes() {
    for (const box of document.querySelectorAll("#runs-body input[data-pick]")) box.checked = selected.has(box.dataset.pick);
    allBox.checked = visible.length > 0 && visible.every((r) => selected.has(r.id));
    renderBulk();
  }

  function renderBulk() {
    bulkBar.hidden = selected.size === 0;
    if (bulkBar.hidden) return;
    const count = `${selected.size} run${selected.size === 1 ? "" : "s"}`;
    fill(bulkBar,
      h("span", { id: "bulk-count" }, everything ? `All ${count} that match are selected` : `${count} selected`),
      !everything
        ? h("button", { class: "link-button", type: "button", id: "select-all", onclick: selectAll }, "Select all that match")
        : null,
      h("span", { class: "actions" },
        h("button", { class: "btn small danger", type: "button", id: "bulk-cancel", onclick: () => bulk("cancel") }, `Cancel ${count}`),
        h("button", { class: "btn small", type: "button", id: "bulk-rerun", onclick: () => bulk("rerun") }, `Rerun ${count}`),
        h("button", { class: "link-button", type: "button", onclick: () => { selected.clear(); everything = false; syncBoxes(); } }, "Clear selection")));
  }

  async function selectAll() {
    selected.clear();
    everything = true;
    if (search && search.kind !== "name") { // one run, or one event's runs: all are shown
      for (const run of visible) selected.add(run.id);
      syncBoxes();
      return;
    }
    const query = runsQuery(search ? { ...filters, event: filters.q } : filters);
    query.set("limit", "1000");
    let cursor = null;
    do {
      if (cursor) query.set("cursor", cursor);
      const page = await api(`/v1/runs?${query}`);
      for (const run of page.runs) selected.add(run.id);
      cursor = page.next_cursor;
    } while (cursor && selected.size < SELECT_ALL_MAX);
    syncBoxes();
  }

  async function bulk(action) {
    const ids = [...selected];
    const verb = action === "cancel" ? "Cancelling" : "Rerunning";
    let done = 0;
    let ok = 0;
    const failures = [];
    progress.hidden = false;
    progress.className = "notice";
    for (let i = 0; i < ids.length; i += BULK_CHUNK) {
      fill(progress, `${verb}: ${done} of ${ids.length}…`);
      const answer = await post("/v1/runs/bulk", { action, run_ids: ids.slice(i, i + BULK_CHUNK) });
      for (const item of answer.results) { done += 1; if (item.ok) ok += 1; else failures.push(item); }
    }
    const what = action === "cancel" ? "Cancelled" : "Reran";
    fill(progress, `${what} ${ok} of ${ids.length} run${ids.length === 1 ? "" : "s"}.`,
      failures.length ? h("span", { class: "subtle" }, ` ${failures.length} not: ${failures[0].error}${failures.length > 1 ? " …" : ""}`) : null);
    selected.clear();
    everything = false;
    lastKey = "";
    syncBoxes();
  }

  // -- the table ----------------------------------------------------------------------------
  const note = h("div", { id: "runs-note" });
  const tbody = h("tbody", { id: "runs-body" });
  const more = h("div", { class: "more", hidden: true },
    h("button", { class: "btn small", type: "button", id: "load-more", onclick: loadMore }, "Load more"));

  async function loadMore() {
    if (!filters.if) {
      limit += PAGE;
      await refresh();
      return;
    }
    const query = runsQuery(search ? { ...filters, event: filters.q } : filters);
    query.set("limit", String(PAGE));
    query.set("cursor", olderCursor || firstCursor);
    const page = await api(`/v1/runs?${query}`);
    older.push(...page.runs);
    olderCursor = page.next_cursor;
    await refresh();
  }
  main().append(
    h("h1", null, "Runs"), toolbar, note, progress, bulkBar,
    h("div", { class: "panel flush" },
      h("table", { class: "list", id: "runs" },
        h("thead", null, h("tr", null, h("th", { class: "pick" }, allBox), RUN_COLUMNS.map((t) => h("th", null, t)))),
        tbody),
      more));

  api("/v1/functions").then((data) => {
    for (const fn of data.functions) {
      if (fn.id !== filters.function) functionSelect.append(h("option", { value: fn.id }, fn.id));
    }
  }).catch(() => {});

  // what the search box holds, looked up once: a run id, an event id, else an event name
  async function resolve(q) {
    if (/[/*]/.test(q)) return { kind: "name" };
    const run = await found(`/v1/runs/${enc(q)}`);
    if (run) return { kind: "run", id: run.id };
    const event = await found(`/v1/events/${enc(q)}`);
    if (event) return { kind: "event", id: event.id, name: event.name };
    return { kind: "name", missing: true };
  }

  async function load() {
    if (filters.q && search === null) search = await resolve(filters.q);
    if (search && search.kind === "run") {
      return { runs: [await api(`/v1/runs/${enc(search.id)}`)], more: false, note: null };
    }
    if (search && search.kind === "event") {
      const event = await api(`/v1/events/${enc(search.id)}`);
      const what = event.runs.length ? "Runs started by event " : "No function ran for event ";
      return { runs: event.runs, more: false, note: h("div", { class: "notice" }, what, eventLink(event.id), ` (${event.name})`) };
    }
    const query = runsQuery(search ? { ...filters, event: filters.q } : filters);
    query.set("limit", String(limit));
    const page = await api(`/v1/runs?${query}`);
    const missing = search && search.missing
      ? h("div", { class: "notice" }, "No run or event has the id ", h("code", null, filters.q), "; showing runs of events named ", h("code", null, filters.q), ".")
      : null;
    firstCursor = page.next_cursor;
    if (filters.if && olderCursor !== undefined) {
      const ids = new Set(page.runs.map((r) => r.id));
      const runs = [...page.runs, ...older.filter((r) => !ids.has(r.id))];
      return { runs, more: Boolean(olderCursor), note: missing };
    }
    return { runs: page.runs, more: Boolean(page.next_cursor), note: missing };
  }

  async function refresh() {
    let result;
    try {
      result = await load();
    } catch (err) {
      if (err.status === 401 || err.status === 0) throw err;
      // a filter the server refuses (a CEL expression that does not compile): say so, once
      fill(note, h("div", { class: "notice bad", id: "runs-error" }, err.message));
      fill(tbody, h("tr", null, h("td", { colspan: 7, class: "empty" }, "No runs.")));
      return false;
    }
    visible = result.runs.filter((r) =>
      (!filters.status || r.status === filters.status) && (!filters.function || r.function_id === filters.function));
    const key = JSON.stringify([visible, result.more]);
    if (key === lastKey) return true;
    lastKey = key;
    fill(note, result.note);
    more.hidden = !result.more;
    if (visible.length === 0) {
      fill(tbody, h("tr", null, h("td", { colspan: 7, class: "empty" },
        !active ? "No runs yet. Send an event to start one."
          : result.more ? "No runs match among the newest runs read; Load more reads older ones." : "No runs match.")));
    } else {
      fill(tbody, ...visible.map((run) => runRow(run, {
        fresh: seen !== null && !seen.has(run.id),
        select: h("input", { type: "checkbox", "data-pick": run.id, "aria-label": `Select run ${run.id}`,
          checked: selected.has(run.id), onchange: (e) => {
            everything = false;
            if (e.target.checked) selected.add(run.id); else selected.delete(run.id);
            syncBoxes();
          } }),
      })));
    }
    seen = new Set([...(seen || []), ...visible.map((r) => r.id)]);
    syncBoxes();
    return true;
  }

  return poller(refresh);
}
