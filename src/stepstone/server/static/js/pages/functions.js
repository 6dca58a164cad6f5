// The functions: triggers, options as they were written, recent runs as small charts; and one
// function's page, from which it can be invoked with a payload.
import { api, enc, found, post } from "../api.js";
import { fill, h, main, readJson } from "../dom.js";
import { optionLines } from "../format.js";
import { hashFor, poller } from "../router.js";
import { functionLink, statsChart, triggerView } from "../widgets.js";

const STATS_EVERY = 5; // polls between two reads of the stats

function card(fn, stats, big) {
  return h("div", { class: `panel card${big ? " big" : ""}`, "data-function-id": fn.id },
    h("h3", null, big ? fn.id : functionLink(fn.id)),
    fn.name !== fn.id ? h("div", { class: "subtle" }, fn.name) : null,
    h("dl", null,
      h("dt", null, "triggers"),
      h("dd", { class: "triggers" }, fn.triggers.length ? fn.triggers.map(triggerView) : h("span", { class: "subtle" }, "none (invoke only)")),
      h("dt", null, "options"),
      h("dd", { class: "options" }, optionLines(fn).map((line) => h("span", { class: "option" }, line)))),
    h("div", { class: "charts" }, stats ? stats.windows.map(statsChart) : h("span", { class: "subtle" }, "…")),
    h("div", { class: "toolbar end" },
      h("a", { class: "btn small", href: hashFor("/runs", { function: fn.id }) }, "Runs"),
      big ? null : h("a", { class: "btn small", href: `#/functions/${enc(fn.id)}` }, "Invoke")));
}

export function functionsPage() {
  const root = h("div", { id: "functions" });
  main().append(h("h1", null, "Functions"), root);
  let functions = null;
  let polls = 0;
  const stats = {};
  async function refresh() {
    if (functions === null) functions = (await api("/v1/functions")).functions;
    if (functions.length === 0) {
      fill(root, h("div", { class: "panel empty" }, "This app has no functions."));
      return false;
    }
    if (polls++ % STATS_EVERY === 0) {
      await Promise.all(functions.map(async (fn) => { stats[fn.id] = await api(`/v1/functions/${enc(fn.id)}/stats`); }));
      fill(root, h("div", { class: "cards" }, functions.map((fn) => card(fn, stats[fn.id], false))));
    }
    return true;
  }
  return poller(refresh);
}

export function functionPage(functionId) {
  const root = h("div", { id: "function" });
  main().append(root);
  let polls = 0;
  let fn = null;
  const chartsAt = h("div");
  const result = h("div", { id: "invoke-result" });
  const payload = h("textarea", { id: "invoke-data", spellcheck: "false" }, "{}");

  async function prefill() {
    // the data of the function's last event, so that invoking it again is one click
    const page = await api(`/v1/runs?${new URLSearchParams({ function: functionId, limit: "1" })}`);
    const last = page.runs[0];
    if (!last || !last.event_ids.length) return;
    const event = await found(`/v1/events/${enc(last.event_ids[0])}`);
    if (event && payload.value === "{}") {
      payload.value = JSON.stringify(event.data, null, 2);
      payload.dataset.from = event.id;
    }
  }

  async function invoke(e) {
    e.preventDefault();
    const data = readJson(payload, result, "payload");
    if (data === undefined) return;
    try {
      const started = await post(`/v1/functions/${enc(functionId)}/invoke`, { data });
      location.hash = `#/runs/${enc(started.run_id)}`;
    } catch (err) {
      if (err.status !== 401) fill(result, h("div", { class: "notice bad" }, err.message));
    }
  }

  async function refresh() {
    if (fn === null) {
      fn = (await api("/v1/functions")).functions.find((f) => f.id === functionId) || false;
      if (!fn) {
        fill(root, h("div", { class: "notice bad" }, "No function has the id ", h("code", null, functionId), "."));
        return false;
      }
      fill(root,
        h("h1", null, h("span", { class: "subtle" }, "Function"), h("span", { id: "function-title" }, fn.id)),
        chartsAt,
        h("form", { class: "panel", id: "invoke", onsubmit: invoke },
          h("h2", { class: "first" }, "Invoke"),
          h("p", { class: "subtle" }, "Starts a run of this function alone, with an event stepstone/function.invoked carrying this data (filled in from its last event)."),
          h("div", { class: "field" }, h("label", { for: "invoke-data" }, "Data (a JSON object)"), payload),
          h("button", { class: "btn primary", type: "submit" }, "Invoke"), result));
      prefill().catch(() => {});
    }
    if (polls++ % STATS_EVERY === 0) {
      fill(chartsAt, card(fn, await api(`/v1/functions/${enc(functionId)}/stats`), true));
    }
    return true;
  }
  return poller(refresh);
}
