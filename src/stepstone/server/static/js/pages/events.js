// The events stream (filtered by name from the URL) with a form that sends a test event,
// and one event's page, from which it can be sent again.
import { api, enc, found, post } from "../api.js";
import { fill, h, jsonView, main, readJson } from "../dom.js";
import { fmtTime, preview, when } from "../format.js";
import { hashFor, poller } from "../router.js";
import { RUN_COLUMNS, eventLink, fact, runLink, runRow } from "../widgets.js";

const PAGE = 50;

export function eventsPage(_id, params) {
  const filter = (params.get("name") || "").trim();
  let lastKey = "";
  let seen = null;
  let limit = PAGE;
  const name = h("input", { type: "text", id: "event-name", value: filter, placeholder: "shop/product.imported", required: true });
  const data = h("textarea", { id: "event-data", spellcheck: "false" }, "{}");
  const result = h("div", { id: "send-result" });
  const form = h("form", { class: "panel send-form", id: "send-event" },
    h("div", null,
      h("h2", { class: "first" }, "Send a test event"),
      h("div", { class: "field" }, h("label", { for: "event-name" }, "Name"), name),
      h("button", { class: "btn primary", type: "submit" }, "Send event"),
      result),
    h("div", { class: "field" }, h("label", { for: "event-data" }, "Data (a JSON object)"), data));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const parsed = readJson(data, result, "data");
    if (parsed === undefined) return;
    try {
      const sent = await post("/v1/events", { name: name.value.trim(), data: parsed });
      fill(result, h("div", { class: "notice spaced" }, "Sent event ", eventLink(sent.ids[0])));
      refresh();
    } catch (err) {
      if (err.status !== 401) fill(result, h("div", { class: "notice bad spaced" }, err.message));
    }
  });

  const nameFilter = h("input", { type: "search", id: "events-filter", value: filter,
    placeholder: "Only events named…", "aria-label": "Event name" });
  const tbody = h("tbody", { id: "events-body" });
  const more = h("div", { class: "more", hidden: true },
    h("button", { class: "btn small", type: "button", onclick: () => { limit += PAGE; refresh(); } }, "Load more"));
  const internal = h("input", { type: "checkbox", id: "show-internal", onchange: () => { lastKey = ""; refresh(); } });
  main().append(h("h1", null, "Events"), form,
    h("form", { class: "toolbar", onsubmit: (e) => { e.preventDefault(); location.hash = hashFor("/events", { name: nameFilter.value.trim() }); } },
      nameFilter, h("button", { class: "btn small", type: "submit" }, "Filter"),
      filter ? h("span", { id: "events-filtered" }, "Events named ", h("code", null, filter), " · ", h("a", { href: "#/events" }, "show all")) : null,
      filter ? h("a", { class: "btn small", href: hashFor("/runs", { event: filter }) }, "Their runs") : null,
      h("label", { class: "check", for: "show-internal" }, internal, "Show stepstone/* events (runs finishing, failing, cancelled)")),
    h("div", { class: "panel flush" }, h("table", { class: "list fixed", id: "events" },
      h("colgroup", null, ["130px", "22%", "232px", "232px", ""].map((w) => h("col", { style: w ? `width:${w}` : null }))),
      h("thead", null, h("tr", null, ["Received", "Name", "Event", "Runs", "Data"].map((t) => h("th", null, t)))),
      tbody), more));

  async function refresh() {
    const query = new URLSearchParams({ limit: String(limit) });
    if (filter) query.set("name", filter);
    const page = await api(`/v1/events?${query}`);
    page.events = page.events.filter((e) => filter || internal.checked || !e.name.startsWith("stepstone/"));
    const key = JSON.stringify(page);
    if (key === lastKey) return;
    lastKey = key;
    more.hidden = !page.next_cursor;
    if (page.events.length === 0) {
      fill(tbody, h("tr", null, h("td", { colspan: 5, class: "empty" },
        filter ? `No events named ${filter}.` : internal.checked ? "No events yet." : "No events yet (stepstone/* events are hidden).")));
    } else {
      fill(tbody, ...page.events.map((e) => h("tr", { "data-event-id": e.id, class: seen && !seen.has(e.id) ? "fresh" : null },
        h("td", { class: "subtle nowrap" }, when(e.received_at)),
        h("td", { class: "clip", title: e.name }, h("a", { href: hashFor("/events", { name: e.name }) }, e.name)),
        h("td", null, eventLink(e.id)),
        h("td", null, e.run_ids.length ? e.run_ids.map((id, i) => [i ? ", " : "", runLink(id)]) : h("span", { class: "subtle" }, "none")),
        h("td", null, h("div", { class: "preview wide" }, preview(e.data, 300))))));
    }
    seen = new Set([...(seen || []), ...page.events.map((e) => e.id)]);
  }
  return poller(refresh);
}

export function eventPage(eventId) {
  const root = h("div", { id: "event" });
  const open = new Set();
  const replayed = h("div", { id: "replay-result" });
  main().append(root);
  let lastKey = "";
  let event = null;

  async function replay() {
    try {
      const body = { name: event.name, data: event.data };
      if (event.user) body.user = event.user;
      if (event.v) body.v = event.v;
      const sent = await post("/v1/events", body);
      fill(replayed, h("div", { class: "notice" }, "Sent again as event ", eventLink(sent.ids[0]), "."));
    } catch (err) {
      if (err.status !== 401) fill(replayed, h("div", { class: "notice bad" }, err.message));
    }
  }

  async function refresh() {
    const fresh = await found(`/v1/events/${enc(eventId)}`);
    if (fresh === null) {
      fill(root, h("div", { class: "notice bad" }, "No event has the id ", h("code", null, eventId), "."));
      return false;
    }
    const key = JSON.stringify(fresh);
    if (key === lastKey) return true;
    lastKey = key;
    event = fresh;
    fill(root,
      h("h1", null, h("span", { class: "subtle" }, "Event"), h("span", { id: "event-title" }, event.name),
        h("span", { class: "actions" },
          h("a", { class: "btn", href: hashFor("/runs", { event: event.name }) }, "Runs of this name"),
          h("button", { class: "btn primary", type: "button", id: "replay", onclick: replay }, "Replay"))),
      replayed,
      h("div", { class: "panel facts" },
        fact("Id", h("span", { class: "id" }, event.id)),
        fact("Sent (ts)", h("span", { title: fmtTime(event.ts / 1000) }, when(event.ts / 1000))),
        fact("Received", when(event.received_at)),
        event.v ? fact("Version", event.v) : null),
      h("h2", null, "Data"), jsonView(event.data, { id: "event-data-view", key: "data", open }),
      event.user ? [h("h2", null, "User"), jsonView(event.user, { key: "user", open })] : null,
      h("h2", null, "Runs it started"),
      h("div", { class: "panel flush" }, h("table", { class: "list", id: "event-runs" },
        h("thead", null, h("tr", null, RUN_COLUMNS.map((t) => h("th", null, t)))),
        h("tbody", null, event.runs.length ? event.runs.map((r) => runRow(r))
          : h("tr", null, h("td", { colspan: 6, class: "empty" }, "No function is triggered by this event."))))));
    return true;
  }
  return poller(refresh);
}
