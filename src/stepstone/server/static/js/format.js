// Times, durations and values as people read them.
import { h } from "./dom.js";

const pad = (n, width) => String(n).padStart(width || 2, "0");
export const now = () => Date.now() / 1000;

export function fmtTime(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "";
  if (seconds < 1) return `${Math.max(0, seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

// "just now", "2 min ago", "3 h ago", "in 5 min"
export function relative(seconds, at) {
  const diff = (at === undefined ? now() : at) - seconds;
  const ahead = diff < 0;
  const d = Math.abs(diff);
  let text;
  if (d < 10) return "just now";
  if (d < 60) text = `${Math.floor(d)} s`;
  else if (d < 3600) text = `${Math.floor(d / 60)} min`;
  else if (d < 86400) text = `${Math.floor(d / 3600)} h`;
  else text = `${Math.floor(d / 86400)} d`;
  return ahead ? `in ${text}` : `${text} ago`;
}

// a time shown relative to now, with the exact time on hover; tick() keeps it current
export function when(seconds) {
  if (seconds === null || seconds === undefined) return h("span", { class: "subtle" }, "—");
  return h("time", { class: "rel", "data-at": String(seconds), title: fmtTime(seconds),
    datetime: new Date(seconds * 1000).toISOString() }, relative(seconds));
}

export function tick(root) {
  for (const el of (root || document).querySelectorAll("time.rel")) {
    const text = relative(Number(el.dataset.at));
    if (el.textContent !== text) el.textContent = text;
  }
}

export function preview(value, max) {
  const text = JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

// seconds as the user would have written them in an option: 90 -> "1m30s", 3600 -> "1h"
export function period(seconds) {
  if (seconds === null || seconds === undefined) return "";
  let rest = Math.round(seconds * 1000) / 1000;
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (rest >= size) { parts.push(`${Math.floor(rest / size)}${unit}`); rest %= size; }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${Number(rest.toFixed(3))}s`);
  return parts.join("");
}

const per = (key) => (key ? ` per ${key}` : "");

// A function's options in words, as they were written: "concurrency 2 per event.data.account"
export function optionLines(fn) {
  const lines = [`retries ${fn.retries}`];
  for (const c of fn.concurrency || []) {
    lines.push(`concurrency ${c.limit}${per(c.key)}${c.scope && c.scope !== "fn" ? ` (scope ${c.scope})` : ""}`);
  }
  if (fn.throttle) {
    const t = fn.throttle;
    lines.push(`throttle ${t.limit} per ${period(t.period)}${per(t.key)}${t.burst > 1 ? `, burst ${t.burst}` : ""}`);
  }
  if (fn.rate_limit) lines.push(`rate limit ${fn.rate_limit.limit} per ${period(fn.rate_limit.period)}${per(fn.rate_limit.key)}`);
  if (fn.debounce) {
    const d = fn.debounce;
    lines.push(`debounce ${period(d.period)}${per(d.key)}${d.timeout ? `, at most ${period(d.timeout)}` : ""}`);
  }
  if (fn.batch_events) {
    const b = fn.batch_events;
    lines.push(`batch ${b.max_size} events or ${period(b.timeout)}${per(b.key)}`);
  }
  if (fn.priority) lines.push(`priority ${fn.priority.run}`);
  if (fn.idempotency) lines.push(`idempotency ${fn.idempotency}`);
  if (fn.singleton) lines.push(`singleton (${fn.singleton.mode})${per(fn.singleton.key)}`);
  for (const c of fn.cancel_on || []) {
    lines.push(`cancel on ${c.event}${c.if_ ? ` if ${c.if_}` : ""}${c.timeout ? ` within ${period(c.timeout)}` : ""}`);
  }
  if (fn.timeouts) {
    const parts = [];
    if (fn.timeouts.start) parts.push(`start within ${period(fn.timeouts.start)}`);
    if (fn.timeouts.finish) parts.push(`finish within ${period(fn.timeouts.finish)}`);
    if (parts.length) lines.push(`timeouts: ${parts.join(", ")}`);
  }
  return lines;
}
