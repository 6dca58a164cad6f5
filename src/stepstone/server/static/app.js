// The stepstone dashboard: plain JavaScript over the REST API under /v1.
//
// Everything a user wrote (event data, step output, error messages, ids) reaches the page
// as text: the DOM is built with createElement and textContent, never with innerHTML.
"use strict";

(() => {
  const TOKEN_KEY = "stepstone.token";
  const POLL_MS = 1000;
  const PAGE = 50;
  const STATUSES = ["queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled", "skipped"];
  const FINAL = new Set(["completed", "failed", "cancelled", "skipped"]);

  // -- DOM -----------------------------------------------------------------------------
  // h("a", {href: "#/runs", class: "x"}, "text", child): strings become text nodes.
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "style") el.style.cssText = value; // CSSOM: allowed by the page's CSP
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  // replaceChildren() would turn a null into the text "null": drop empty children first
  function fill(el, ...children) {
    el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
    return el;
  }

  const main = () => document.getElementById("main");
  const runLink = (id) => h("a", { href: `#/runs/${encodeURIComponent(id)}`, class: "id" }, id);
  const eventLink = (id) => h("a", { href: `#/events/${encodeURIComponent(id)}`, class: "id" }, id);
  const badge = (status) => h("span", { class: `badge ${status}` }, status);

  function jsonBlock(value, extra) {
    const text = value === undefined ? "undefined" : JSON.stringify(value, null, 2);
    return h("pre", { class: `json ${extra || ""}` }, text);
  }

  function errorBlock(error) {
    if (!error) return null;
    const title = `${error.name || "Error"}: ${error.message || ""}`;
    return h("div", { class: "error-box" },
      h("div", { class: "error-title" }, title),
      error.stack ? h("pre", { class: "json error" }, error.stack) : null);
  }

  let toastTimer = null;
  function toast(message, bad) {
    const el = document.getElementById("toast");
    el.textContent = message;
    el.className = bad ? "toast bad" : "toast";
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
  }

  // -- formatting ------------------------------------------------------------------------
  const pad = (n, width) => String(n).padStart(width || 2, "0");
  function fmtTime(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const d = new Date(seconds * 1000);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
    if (seconds < 1) return `${Math.max(0, seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;
    if (seconds < 60) return `${seconds.toFixed(2)} s`;
    const s = Math.round(seconds);
    if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }
  const now = () => Date.now() / 1000;
  function preview(value, max) {
    const text = JSON.stringify(value);
    return text.length > max ? `${text.slice(0, max)}…` : text;
  }

  // -- the API ---------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, status) { super(message); this.status = status; }
  }

  // "/v1/runs" is fetched as "v1/runs", relative to the page: the dashboard works at "/"
  // and mounted under a sub-path of another app ("/stepstone/") alike.
  const local = (path) => path.replace(/^\/+/, "");

  async function api(path, options) {
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
      response = await fetch(local(path), { method: opts.method || "GET", headers, body, cache: "no-store" });
    } catch (err) {
      setLive(false);
      throw new ApiError(`the server did not answer (${err.message})`, 0);
    }
    setLive(true);
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (response.status === 401) {
      showLogin(token ? "That token was not accepted." : "");
      throw new ApiError("sign in first", 401);
    }
    if (!response.ok) {
      throw new ApiError((data && data.error) || `HTTP ${response.status}`, response.status);
    }
    return data;
  }

  function setLive(ok) {
    const el = document.getElementById("live");
    el.classList.toggle("offline", !ok);
    el.textContent = ok ? "live" : "offline";
  }

  // -- views: each has an optional stop(); polling stops when the view changes ---------------
  let view = null;
  let signedOutView = false;

  function poller(fn) {
    let timer = null;
    let stopped = false;
    const tick = async () => {
      // a hidden tab does not poll; it catches up when shown again
      if (!document.hidden) {
        try { await fn(); } catch (err) { if (err.status !== 401) console.warn(err); }
      }
      if (!stopped && !signedOutView) timer = setTimeout(tick, POLL_MS);
    };
    tick();
    return { stop() { stopped = true; clearTimeout(timer); } };
  }

  function parseHash() {
    const raw = location.hash.replace(/^#/, "") || "/runs";
    const [path, query] = raw.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    return { parts, params: new URLSearchParams(query || "") };
  }

  function route() {
    if (view && view.stop) view.stop();
    view = null;
    signedOutView = false;
    const { parts, params } = parseHash();
    const section = parts[0] || "runs";
    for (const link of document.querySelectorAll("[data-nav]")) {
      link.classList.toggle("active", link.dataset.nav === section);
    }
    fill(main());
    if (section === "runs" && parts[1]) view = runPage(parts[1]);
    else if (section === "runs") view = runsPage(params);
    else if (section === "events" && parts[1]) view = eventPage(parts[1]);
    else if (section === "events") view = eventsPage(params);
    else if (section === "functions") view = functionsPage();
    else main().append(h("div", { class: "notice bad" }, "There is no such page."));
  }

  // -- sign in ---------------------------------------------------------------------------
  function showLogin(message) {
    if (signedOutView) return;
    if (view && view.stop) view.stop();
    signedOutView = true;
    const input = h("input", { type: "password", id: "token", autocomplete: "current-password", required: true });
    const form = h("form", { class: "panel login", id: "login" },
      h("h1", null, "Sign in"),
      h("p", null, "This server needs its API token (the value of --api-token or STEPSTONE_API_TOKEN). " +
        "It is kept in this tab's session storage only."),
      message ? h("div", { class: "notice bad" }, message) : null,
      h("div", { class: "field" }, h("label", { for: "token" }, "API token"), input),
      h("button", { class: "btn primary", type: "submit" }, "Sign in"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      updateSignOut();
      route();
    });
    fill(main(), form);
    input.focus();
  }

  function updateSignOut() {
    document.getElementById("sign-out").hidden = !sessionStorage.getItem(TOKEN_KEY);
  }

  // -- runs --------------------------------------------------------------------------------
  function runsPage(params) {
    const filters = {
      status: params.get("status") || "",
      function: params.get("function") || "",
      q: (params.get("q") || "").trim(),
    };
    let limit = PAGE;
    let seen = null; // run ids shown so far: rows added later are highlighted
    let lastKey = "";

    const setFilter = (name, value) => {
      const next = new URLSearchParams();
      for (const [k, v] of Object.entries({ ...filters, [name]: value })) if (v) next.set(k, v);
      const query = next.toString();
      location.hash = `#/runs${query ? `?${query}` : ""}`;
    };

    const statusSelect = h("select", { id: "status-filter", "aria-label": "Status",
      onchange: (e) => setFilter("status", e.target.value) },
      h("option", { value: "" }, "All statuses"),
      STATUSES.map((s) => h("option", { value: s, selected: s === filters.status }, s)));
    const functionSelect = h("select", { id: "function-filter", "aria-label": "Function",
      onchange: (e) => setFilter("function", e.target.value) },
      h("option", { value: "" }, "All functions"),
      filters.function ? h("option", { value: filters.function, selected: true }, filters.function) : null);
    const search = h("input", { type: "search", id: "search", class: "grow", value: filters.q,
      placeholder: "Search by run id or event id", "aria-label": "Search" });
    const searchForm = h("form", { class: "grow", style: "display:flex", onsubmit: (e) => {
      e.preventDefault(); setFilter("q", search.value.trim());
    } }, search);

    const note = h("div");
    const tbody = h("tbody", { id: "runs-body" });
    const more = h("div", { class: "more", hidden: true },
      h("button", { class: "btn small", type: "button", onclick: () => { limit += PAGE; refresh(); } }, "Load more"));
    main().append(
      h("h1", null, "Runs"),
      h("div", { class: "toolbar" }, statusSelect, functionSelect, searchForm,
        filters.status || filters.function || filters.q
          ? h("a", { href: "#/runs", class: "btn small" }, "Clear") : null),
      note,
      h("div", { class: "panel flush" },
        h("table", { class: "list", id: "runs" },
          h("thead", null, h("tr", null, ["Run", "Function", "Status", "Event", "Created", "Duration"]
            .map((t) => h("th", null, t)))),
          tbody),
        more));

    api("/v1/functions").then((data) => {
      for (const fn of data.functions) {
        if (fn.id === filters.function) continue;
        functionSelect.append(h("option", { value: fn.id }, fn.id));
      }
    }).catch(() => {});

    async function load() {
      if (filters.q) return searchRuns(filters.q);
      const query = new URLSearchParams({ limit: String(limit) });
      if (filters.status) query.set("status", filters.status);
      if (filters.function) query.set("function", filters.function);
      const page = await api(`/v1/runs?${query}`);
      return { runs: page.runs, more: Boolean(page.next_cursor), note: null };
    }

    async function searchRuns(q) {
      try {
        const run = await api(`/v1/runs/${encodeURIComponent(q)}`);
        return { runs: [run], more: false, note: null };
      } catch (err) {
        if (err.status !== 404) throw err;
      }
      try {
        const event = await api(`/v1/events/${encodeURIComponent(q)}`);
        const what = event.runs.length ? "Runs started by event " : "No function ran for event ";
        return { runs: event.runs, more: false,
          note: h("div", { class: "notice" }, what, eventLink(event.id), ` (${event.name})`) };
      } catch (err) {
        if (err.status !== 404) throw err;
      }
      return { runs: [], more: false, note: h("div", { class: "notice bad" }, "No run or event has the id ", h("code", null, q), ".") };
    }

    async function refresh() {
      const result = await load();
      const visible = result.runs.filter((r) =>
        (!filters.status || r.status === filters.status) && (!filters.function || r.function_id === filters.function));
      const key = JSON.stringify([visible, result.more]);
      if (key === lastKey) return;
      lastKey = key;
      fill(note, ...(result.note ? [result.note] : []));
      more.hidden = !result.more;
      if (visible.length === 0) {
        fill(tbody, h("tr", null, h("td", { colspan: 6, class: "empty" },
          filters.q ? "No runs." : "No runs yet. Send an event to start one.")));
      } else {
        fill(tbody, ...visible.map((run) => runRow(run, seen !== null && !seen.has(run.id))));
      }
      seen = new Set([...(seen || []), ...visible.map((r) => r.id)]);
    }

    return poller(refresh);
  }

  function runRow(run, fresh) {
    const end = run.ended_at || (FINAL.has(run.status) ? null : now());
    const start = run.started_at || run.created_at;
    return h("tr", { "data-run-id": run.id, class: fresh ? "fresh" : null },
      h("td", null, runLink(run.id)),
      h("td", null, run.function_id),
      h("td", null, badge(run.status)),
      h("td", null, run.event_ids.length ? eventLink(run.event_ids[0]) : "",
        run.event_ids.length > 1 ? h("span", { class: "subtle" }, ` +${run.event_ids.length - 1}`) : null),
      h("td", { class: "subtle" }, fmtTime(run.created_at)),
      h("td", null, end ? fmtDuration(end - start) : ""));
  }

  // -- one run -----------------------------------------------------------------------------
  function runPage(runId) {
    const expanded = new Set();
    let lastKey = "";
    let confirming = false;
    let run = null;
    let stopped = false;

    const root = h("div", { id: "run" });
    main().append(root);

    async function act(path, body, done) {
      try {
        const result = await api(path, { method: "POST", body: body || {} });
        done(result);
      } catch (err) {
        if (err.status !== 401) toast(err.message, true);
      }
    }

    const cancel = () => act(`/v1/runs/${encodeURIComponent(runId)}/cancel`, {}, () => {
      confirming = false;
      toast("Cancellation requested.");
      refresh(true);
    });
    const rerun = (fromStep) => act(`/v1/runs/${encodeURIComponent(runId)}/rerun`,
      fromStep ? { from_step: fromStep } : {}, (result) => {
        toast(fromStep ? `Rerunning from step ${fromStep}.` : "Rerun started.");
        location.hash = `#/runs/${encodeURIComponent(result.run_id)}`;
      });

    function render() {
      const final = FINAL.has(run.status);
      const buttons = h("div", { class: "actions" });
      if (!final) {
        if (confirming) {
          buttons.append(h("span", { class: "confirm" }, "Cancel this run?",
            h("button", { class: "btn small danger solid", id: "confirm-cancel", type: "button", onclick: cancel }, "Yes, cancel"),
            h("button", { class: "btn small", type: "button", onclick: () => { confirming = false; render(); } }, "No")));
        } else {
          buttons.append(h("button", { class: "btn danger", id: "cancel-run", type: "button",
            onclick: () => { confirming = true; render(); } }, "Cancel run"));
        }
      }
      buttons.append(h("button", { class: "btn", id: "rerun", type: "button", onclick: () => rerun(null) }, "Rerun"));

      const start = run.started_at || run.created_at;
      const end = run.ended_at || (final ? start : now());
      fill(root,
        h("h1", null, h("span", { class: "subtle" }, "Run"), h("span", { class: "id", id: "run-id" }, run.id),
          h("span", { id: "run-status" }, badge(run.status)), buttons),
        h("div", { class: "panel facts" },
          fact("Function", h("a", { href: `#/runs?function=${encodeURIComponent(run.function_id)}` }, run.function_id)),
          fact("Created", fmtTime(run.created_at)),
          fact("Started", fmtTime(run.started_at)),
          fact("Ended", fmtTime(run.ended_at)),
          fact("Duration", run.started_at ? fmtDuration(end - start) : ""),
          fact("Function attempt", String(run.attempt + 1))),
        run.status === "completed" ? h("div", null, h("h2", null, "Output"), h("div", { id: "run-output" }, jsonBlock(run.output))) : null,
        run.error ? h("div", null, h("h2", null, "Error"), h("div", { id: "run-error" }, errorBlock(run.error))) : null,
        h("h2", null, "Steps"),
        waterfall(run, expanded, final, rerun, render),
        h("h2", null, run.events.length > 1 ? `Trigger events (${run.events.length})` : "Trigger event"),
        h("div", { id: "trigger" }, run.events.length === 0
          ? h("div", { class: "panel subtle" }, "No trigger event (a cron or an invocation).")
          : run.events.map((e) => h("div", { class: "panel" },
            h("div", { class: "toolbar" }, h("strong", null, e.name), eventLink(e.id),
              h("span", { class: "subtle" }, fmtTime(e.ts / 1000))),
            jsonBlock(e.data)))),
        h("h2", null, "History"),
        historyTable(run.history));
    }

    async function refresh(force) {
      let fresh;
      try {
        fresh = await api(`/v1/runs/${encodeURIComponent(runId)}`);
      } catch (err) {
        if (err.status === 404) {
          stopped = true;
          fill(root, h("div", { class: "notice bad" }, "No run has the id ", h("code", null, runId), "."));
          return;
        }
        throw err;
      }
      const key = JSON.stringify(fresh);
      if (!force && key === lastKey && FINAL.has(fresh.status)) return;
      lastKey = key;
      run = fresh;
      render();
    }

    const polling = poller(async () => { if (!stopped) await refresh(false); });
    return polling;
  }

  function fact(label, value) {
    return h("div", { class: "fact" }, h("div", { class: "k" }, label), h("div", { class: "v" }, value || "—"));
  }

  const KIND_LABEL = { run: "step", sleep: "sleep", wait: "wait", invoke: "invoke", send: "send" };
  // A step id used again in a run (a step in a loop) keeps its id; the occurrence (0, 1, ...)
  // tells the uses apart: shown as "repeat", "repeat #2", ...; keyed as `id#occurrence`.
  const stepLabel = (step) => (step.occurrence ? `${step.id} #${step.occurrence + 1}` : step.id);
  const stepKey = (id, occurrence) => `${id}#${occurrence || 0}`;

  function waterfall(run, expanded, final, rerun, rerender) {
    const steps = [...run.steps].sort((a, b) => (a.started_at || 0) - (b.started_at || 0));
    const panel = h("div", { class: "panel flush waterfall", id: "waterfall" });
    if (steps.length === 0) {
      panel.append(h("div", { class: "empty" }, final ? "This run had no steps." : "No step has run yet."));
      return panel;
    }
    const retries = {};
    for (const entry of run.history) {
      if (entry.kind === "step.retrying" && entry.data && entry.data.step) {
        const key = stepKey(entry.data.step, entry.data.occurrence);
        (retries[key] = retries[key] || []).push(entry);
      }
    }
    const t0 = Math.min(run.started_at || run.created_at, ...steps.map((s) => s.started_at || Infinity),
      ...Object.values(retries).flat().map((e) => e.at));
    const ends = steps.map((s) => s.ended_at || 0);
    let t1 = Math.max(run.ended_at || 0, ...ends, final ? 0 : now());
    if (t1 <= t0) t1 = t0 + 0.001;
    const span = t1 - t0;
    const pct = (t) => `${(Math.min(Math.max(t - t0, 0), span) / span) * 100}%`;

    panel.append(h("div", { class: "wf-head" }, h("div", null, "Step"),
      h("div", { class: "wf-axis" }, h("span", null, "0"), h("span", null, fmtDuration(span / 2)), h("span", null, fmtDuration(span))),
      h("div", { style: "text-align:right" }, "Duration · attempts")));

    for (const step of steps) {
      const key = stepKey(step.id, step.occurrence);
      const stepRetries = retries[key] || [];
      const firstStart = stepRetries.length ? Math.min(step.started_at || Infinity, ...stepRetries.map((e) => e.at)) : step.started_at;
      const waiting = !step.ended_at && ["sleeping", "waiting", "invoking"].includes(step.status);
      const start = step.started_at || t0;
      const end = step.ended_at || (waiting ? Math.min(step.wake_at || t1, t1) : (final ? start : t1));
      const bar = h("div", { class: `wf-bar ${step.status} ${step.kind}${waiting && (step.wake_at || 0) > t1 ? " open-ended" : ""}`,
        style: `left:${pct(start)};width:calc(${pct(end)} - ${pct(start)})` });
      const retrySpan = stepRetries.length && firstStart < start
        ? h("div", { class: "wf-bar retry-span", style: `left:${pct(firstStart)};width:calc(${pct(start)} - ${pct(firstStart)})` }) : null;
      const track = h("div", { class: "wf-track" }, retrySpan, bar,
        stepRetries.map((e) => h("span", { class: "wf-tick", title: `attempt failed: ${(e.data.error || {}).message || ""}`, style: `left:${pct(e.at)}` })));
      let meta;
      if (step.kind === "sleep" && step.status === "sleeping") meta = `wakes in ${fmtDuration(Math.max(0, step.wake_at - now()))}`;
      else if (step.kind === "wait" && step.status === "waiting") meta = `waiting for ${(step.detail || {}).event || "an event"}`;
      else if (step.kind === "invoke" && step.status === "invoking") meta = "waiting for the invoked run";
      else meta = fmtDuration((step.ended_at || end) - (firstStart || start));
      const open = expanded.has(key);
      const row = h("div", { class: `wf-row${open ? " open" : ""}`, "data-step-id": step.id,
        "data-step-occurrence": step.occurrence || 0, role: "button", tabindex: "0",
        onclick: () => { if (open) expanded.delete(key); else expanded.add(key); rerender(); } },
      h("div", { class: "wf-name" }, h("span", { class: "kind" }, KIND_LABEL[step.kind] || step.kind),
        h("span", { class: "step-id", title: stepLabel(step) }, stepLabel(step))),
      track,
      h("div", { class: "wf-meta" }, h("span", { class: "dur" }, meta), " · ",
        badge(step.status), step.attempts > 1 ? ` ${step.attempts}×` : ""));
      panel.append(row);
      if (open) panel.append(stepDetail(step, stepRetries, rerun));
    }
    return panel;
  }

  function stepDetail(step, stepRetries, rerun) {
    const body = h("div", { class: "wf-detail", "data-step-detail": step.id });
    body.append(h("div", { class: "row" },
      h("span", { class: "subtle" }, `started ${fmtTime(step.started_at)}`),
      step.ended_at ? h("span", { class: "subtle" }, `· ended ${fmtTime(step.ended_at)}`) : null,
      step.wake_at && !step.ended_at ? h("span", { class: "subtle" }, `· resumes by ${fmtTime(step.wake_at)}`) : null,
      step.kind === "run" ? h("span", { class: "subtle" }, `· ${step.attempts} attempt${step.attempts === 1 ? "" : "s"}`) : null,
      // a rerun starts from a step id's first use: offered there only, where it means that
      step.occurrence ? null : h("span", { class: "actions" }, h("button", { class: "btn small", type: "button",
        "data-rerun-from": step.id, onclick: (e) => { e.stopPropagation(); rerun(step.id); } }, "Rerun from this step"))));
    if (step.detail) body.append(h("div", { class: "field" }, h("label", null, "Detail"), jsonBlock(step.detail)));
    if (stepRetries.length) {
      body.append(h("label", null, "Failed attempts"), h("ol", { class: "attempts" }, stepRetries.map((e) =>
        h("li", null, h("span", { class: "subtle" }, `${fmtTime(e.at)} `),
          `${(e.data.error || {}).name || "Error"}: ${(e.data.error || {}).message || ""}`,
          e.data.at ? h("span", { class: "subtle" }, ` (retry at ${fmtTime(e.data.at)})`) : null))));
    }
    if (step.error) body.append(h("label", null, "Error"), h("div", { class: "step-error" }, errorBlock(step.error)));
    else if (step.status === "completed") body.append(h("label", null, "Output"), h("div", { class: "step-output" }, jsonBlock(step.output)));
    return body;
  }

  function historyTable(history) {
    return h("div", { class: "panel flush" }, h("table", { class: "list", id: "history" },
      h("thead", null, h("tr", null, h("th", null, "At"), h("th", null, "What"), h("th", null, "Detail"))),
      h("tbody", null, history.map((entry) => h("tr", null,
        h("td", { class: "subtle", style: "white-space:nowrap" }, fmtTime(entry.at)),
        h("td", null, entry.kind),
        h("td", null, entry.data && Object.keys(entry.data).length
          ? h("div", { class: "preview", title: JSON.stringify(entry.data) }, JSON.stringify(entry.data)) : ""))))));
  }

  // -- events ------------------------------------------------------------------------------
  function eventsPage(params) {
    let lastKey = "";
    let seen = null;
    let limit = PAGE;
    const name = h("input", { type: "text", id: "event-name", value: params.get("name") || "",
      placeholder: "shop/product.imported", required: true });
    const data = h("textarea", { id: "event-data", spellcheck: "false" }, "{}");
    const result = h("div", { id: "send-result" });
    const form = h("form", { class: "panel send-form", id: "send-event" },
      h("div", null,
        h("h2", { style: "margin-top:0" }, "Send a test event"),
        h("div", { class: "field" }, h("label", { for: "event-name" }, "Name"), name),
        h("button", { class: "btn primary", type: "submit" }, "Send event"),
        result),
      h("div", { class: "field" }, h("label", { for: "event-data" }, "Data (a JSON object)"), data));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      let parsed;
      try {
        parsed = JSON.parse(data.value || "{}");
      } catch (err) {
        fill(result, h("div", { class: "notice bad" }, `The data is not valid JSON: ${err.message}`));
        return;
      }
      try {
        const sent = await api("/v1/events", { method: "POST", body: { name: name.value.trim(), data: parsed } });
        fill(result, h("div", { class: "notice", style: "margin:12px 0 0" }, "Sent event ", eventLink(sent.ids[0])));
        refresh();
      } catch (err) {
        if (err.status !== 401) fill(result, h("div", { class: "notice bad", style: "margin:12px 0 0" }, err.message));
      }
    });

    const tbody = h("tbody", { id: "events-body" });
    const more = h("div", { class: "more", hidden: true },
      h("button", { class: "btn small", type: "button", onclick: () => { limit += PAGE; refresh(); } }, "Load more"));
    const internal = h("input", { type: "checkbox", id: "show-internal", onchange: () => { lastKey = ""; refresh(); } });
    main().append(h("h1", null, "Events"), form,
      h("div", { class: "toolbar" }, h("label", { class: "check", for: "show-internal" }, internal,
        "Show stepstone/* events (runs finishing, failing, cancelled)")),
      h("div", { class: "panel flush" }, h("table", { class: "list fixed", id: "events" },
        h("colgroup", null, ["215px", "18%", "232px", "232px", ""].map((w) => h("col", { style: w ? `width:${w}` : null }))),
        h("thead", null, h("tr", null, ["Received", "Name", "Event", "Runs", "Data"].map((t) => h("th", null, t)))),
        tbody), more));

    async function refresh() {
      const page = await api(`/v1/events?limit=${limit}`);
      page.events = page.events.filter((e) => internal.checked || !e.name.startsWith("stepstone/"));
      const key = JSON.stringify(page);
      if (key === lastKey) return;
      lastKey = key;
      more.hidden = !page.next_cursor;
      if (page.events.length === 0) {
        fill(tbody, h("tr", null, h("td", { colspan: 5, class: "empty" }, internal.checked ? "No events yet." : "No events yet (stepstone/* events are hidden).")));
      } else {
        fill(tbody, ...page.events.map((e) => h("tr", { "data-event-id": e.id, class: seen && !seen.has(e.id) ? "fresh" : null },
          h("td", { class: "subtle", style: "white-space:nowrap" }, fmtTime(e.received_at)),
          h("td", { class: "clip", title: e.name }, e.name),
          h("td", null, eventLink(e.id)),
          h("td", null, e.run_ids.length ? e.run_ids.map((id, i) => [i ? ", " : "", runLink(id)]) : h("span", { class: "subtle" }, "none")),
          h("td", null, h("div", { class: "preview wide" }, preview(e.data, 300))))));
      }
      seen = new Set([...(seen || []), ...page.events.map((e) => e.id)]);
    }
    return poller(refresh);
  }

  function eventPage(eventId) {
    const root = h("div", { id: "event" });
    main().append(root);
    let lastKey = "";
    let stopped = false;
    async function refresh() {
      if (stopped) return;
      let event;
      try {
        event = await api(`/v1/events/${encodeURIComponent(eventId)}`);
      } catch (err) {
        if (err.status === 404) {
          stopped = true;
          fill(root, h("div", { class: "notice bad" }, "No event has the id ", h("code", null, eventId), "."));
          return;
        }
        throw err;
      }
      const key = JSON.stringify(event);
      if (key === lastKey) return;
      lastKey = key;
      fill(root,
        h("h1", null, h("span", { class: "subtle" }, "Event"), h("span", { id: "event-title" }, event.name)),
        h("div", { class: "panel facts" },
          fact("Id", h("span", { class: "id" }, event.id)),
          fact("Sent (ts)", fmtTime(event.ts / 1000)),
          fact("Received", fmtTime(event.received_at)),
          event.v ? fact("Version", event.v) : null),
        h("h2", null, "Data"), h("div", { id: "event-data-view" }, jsonBlock(event.data)),
        event.user ? [h("h2", null, "User"), jsonBlock(event.user)] : null,
        h("h2", null, "Runs it started"),
        h("div", { class: "panel flush" }, h("table", { class: "list", id: "event-runs" },
          h("thead", null, h("tr", null, ["Run", "Function", "Status", "Event", "Created", "Duration"].map((t) => h("th", null, t)))),
          h("tbody", null, event.runs.length ? event.runs.map((r) => runRow(r, false))
            : h("tr", null, h("td", { colspan: 6, class: "empty" }, "No function is triggered by this event."))))));
    }
    return poller(refresh);
  }

  // -- functions -----------------------------------------------------------------------------
  function functionsPage() {
    const root = h("div", { id: "functions" });
    main().append(h("h1", null, "Functions"), root);
    api("/v1/functions").then((data) => {
      if (data.functions.length === 0) {
        root.append(h("div", { class: "panel empty" }, "This app has no functions."));
        return;
      }
      root.append(h("div", { class: "cards" }, data.functions.map((fn) => {
        const options = Object.entries(fn).filter(([k]) => !["id", "name", "triggers"].includes(k));
        return h("div", { class: "panel card", "data-function-id": fn.id },
          h("h3", null, fn.id),
          fn.name !== fn.id ? h("div", { class: "subtle" }, fn.name) : null,
          h("dl", null,
            h("dt", null, "triggers"),
            h("dd", null, fn.triggers.length ? fn.triggers.map(triggerView) : h("span", { class: "subtle" }, "none (invoke only)")),
            options.map(([k, v]) => [h("dt", null, k), h("dd", null, typeof v === "object" ? h("code", null, JSON.stringify(v)) : String(v))])),
          h("div", { class: "toolbar", style: "margin:14px 0 0" },
            h("a", { class: "btn small", href: `#/runs?function=${encodeURIComponent(fn.id)}` }, "Runs"),
            fn.triggers.filter((t) => t.event && !t.event.includes("*")).slice(0, 1).map((t) =>
              h("a", { class: "btn small", href: `#/events?name=${encodeURIComponent(t.event)}` }, "Send a test event"))));
      })));
    }).catch((err) => {
      if (err.status !== 401) root.append(h("div", { class: "notice bad" }, err.message));
    });
    return null;
  }

  function triggerView(t) {
    if (t.cron) return h("span", { class: "trigger" }, "cron ", h("code", null, t.cron), t.tz ? ` (${t.tz})` : "");
    return h("span", { class: "trigger" }, "event ", h("code", null, t.event), t.if ? [" if ", h("code", null, t.if)] : null);
  }

  // -- start -------------------------------------------------------------------------------
  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    updateSignOut();
    route();
  });
  window.addEventListener("hashchange", route);
  fetch(local("/health"), { cache: "no-store" }).then((r) => r.json()).then((info) => {
    document.getElementById("app-name").textContent = `${info.app}${info.dev ? " · dev" : ""}`;
  }).catch(() => setLive(false));
  updateSignOut();
  route();
})();
