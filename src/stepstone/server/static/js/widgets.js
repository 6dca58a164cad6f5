// Pieces several pages show: links, a run's row, facts, a function's small charts.
import { enc } from "./api.js";
import { badge, h } from "./dom.js";
import { fmtDuration, now, when } from "./format.js";

export const STATUSES = ["queued", "running", "sleeping", "waiting", "completed", "failed", "cancelled", "skipped"];
export const FINAL = new Set(["completed", "failed", "cancelled", "skipped"]);

export const runLink = (id) => h("a", { href: `#/runs/${enc(id)}`, class: "id" }, id);
export const eventLink = (id, text) => h("a", { href: `#/events/${enc(id)}`, class: text ? "event-name" : "id", title: id }, text || id);
export const functionLink = (id) => h("a", { href: `#/functions/${enc(id)}`, class: "function-link" }, id);

export const RUN_COLUMNS = ["Run", "Function", "Status", "Event", "Started", "Duration"];

export function runDuration(run) {
  const end = run.ended_at || (FINAL.has(run.status) ? null : now());
  const start = run.started_at || run.created_at;
  return end ? fmtDuration(end - start) : "";
}

// the run's trigger event by name (a link to it); the id on hover
export function eventCell(run) {
  if (!run.event_ids.length) return h("span", { class: "subtle" }, "none");
  return [eventLink(run.event_ids[0], run.event_name || run.event_ids[0]),
    run.event_ids.length > 1 ? h("span", { class: "subtle" }, ` +${run.event_ids.length - 1}`) : null];
}

export function runRow(run, options) {
  const opts = options || {};
  return h("tr", { "data-run-id": run.id, class: opts.fresh ? "fresh" : null },
    opts.select ? h("td", { class: "pick" }, opts.select) : null,
    h("td", null, runLink(run.id)),
    h("td", null, functionLink(run.function_id)),
    h("td", null, badge(run.status)),
    h("td", { class: "event-cell" }, eventCell(run)),
    h("td", { class: "subtle started" }, when(run.started_at || run.created_at)),
    h("td", null, runDuration(run)));
}

export function fact(label, value) {
  return h("div", { class: "fact" }, h("div", { class: "k" }, label), h("div", { class: "v" }, value || "—"));
}

export function triggerView(t) {
  if (t.cron) return h("span", { class: "trigger" }, "cron ", h("code", null, t.cron), t.tz ? ` (${t.tz})` : "");
  return h("span", { class: "trigger" }, "event ", h("a", { href: `#/events?name=${enc(t.event)}` }, h("code", null, t.event)),
    t.if ? [" if ", h("code", null, t.if)] : null);
}

const CHART_STATUSES = ["completed", "failed", "cancelled", "running", "sleeping", "waiting", "queued", "skipped"];
const sum = (counts) => Object.values(counts).reduce((a, b) => a + b, 0);
const countsText = (counts) => CHART_STATUSES.filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(", ");

// One window of a function's stats (the last hour or day): runs per bucket stacked by status,
// and each bucket's p95 duration with its p50 marked.
export function statsChart(win) {
  const label = win.window === "hour" ? "Last hour" : "Last day";
  const total = sum(win.counts);
  const most = Math.max(1, ...win.buckets.map((b) => sum(b.counts)));
  const slowest = Math.max(0, ...win.buckets.map((b) => b.p95 || 0));
  const step = win.bucket_seconds;
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const runs = h("div", { class: "chart bars", "aria-label": `${label}: runs by status` },
    win.buckets.map((b) => {
      const n = sum(b.counts);
      return h("div", { class: "bar", title: `${clock(b.start)}–${clock(b.start + step)}: ${n ? countsText(b.counts) : "no runs"}` },
        CHART_STATUSES.filter((s) => b.counts[s]).map((s) =>
          h("span", { class: `seg ${s}`, style: `height:${(b.counts[s] / most) * 100}%` })));
    }));
  const times = h("div", { class: "chart bars durations", "aria-label": `${label}: p50 and p95 durations` },
    win.buckets.map((b) => h("div", { class: "bar", title: b.p95 === null ? `${clock(b.start)}: no run ended`
      : `${clock(b.start)}: p50 ${fmtDuration(b.p50)}, p95 ${fmtDuration(b.p95)}` },
    b.p95 === null ? null : h("span", { class: "seg p95", style: `height:${slowest ? (b.p95 / slowest) * 100 : 0}%` },
      h("span", { class: "p50", style: `bottom:${slowest ? (b.p50 / b.p95) * 100 : 0}%` })))));
  return h("div", { class: "stats", "data-window": win.window },
    h("div", { class: "stats-head" }, h("strong", null, label),
      h("span", { class: "stats-total" }, total ? `${total} run${total === 1 ? "" : "s"}: ${countsText(win.counts)}` : "no runs"),
      win.complete ? null : h("span", { class: "subtle" }, " (newest runs only)")),
    runs,
    h("div", { class: "stats-head" }, h("span", { class: "stats-durations" },
      win.p50 === null ? "no run ended" : `p50 ${fmtDuration(win.p50)} · p95 ${fmtDuration(win.p95)}`)),
    times);
}
