// One run: its facts, output or error, the waterfall of its steps, trigger events, history.
import { api, enc, found, post } from "../api.js";
import { badge, errorBlock, fill, h, jsonView, main, toast } from "../dom.js";
import { fmtDuration, fmtTime, now, when } from "../format.js";
import { poller } from "../router.js";
import { FINAL, eventLink, fact, functionLink, runLink } from "../widgets.js";

const KIND_LABEL = { run: "step", sleep: "sleep", wait: "wait", invoke: "invoke", send: "send" };
const OPEN_STATUSES = ["sleeping", "waiting", "invoking"];

export function runPage(runId) {
  const expanded = new Set(); // steps whose detail is open
  const open = new Set(); // long values shown in full
  let lastKey = "";
  let confirming = false;
  let run = null;

  const root = h("div", { id: "run" });
  main().append(root);

  async function act(path, body, done) {
    try {
      done(await post(path, body));
    } catch (err) {
      if (err.status !== 401) toast(err.message, true);
    }
  }

  const cancel = () => act(`/v1/runs/${enc(runId)}/cancel`, {}, () => {
    confirming = false;
    toast("Cancellation requested.");
    refresh(true);
  });
  const rerun = (fromStep) => act(`/v1/runs/${enc(runId)}/rerun`, fromStep ? { from_step: fromStep } : {}, (result) => {
    location.hash = `#/runs/${enc(result.run_id)}`;
    toast(fromStep ? `Rerunning from step ${fromStep}.` : "Rerun started.");
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
      run.rerun_of || run.reruns.length ? h("div", { class: "lineage" },
        run.rerun_of ? h("span", { id: "rerun-of" }, "rerun of ", runLink(run.rerun_of)) : null,
        run.reruns.length ? h("span", { id: "reruns" }, `rerun ${run.reruns.length === 1 ? "once" : `${run.reruns.length} times`}: `,
          run.reruns.map((id, i) => [i ? ", " : "", runLink(id)])) : null) : null,
      h("div", { class: "panel facts" },
        fact("Function", functionLink(run.function_id)),
        fact("Event", run.event_ids.length ? eventLink(run.event_ids[0], run.event_name || run.event_ids[0]) : null),
        fact("Created", when(run.created_at)),
        fact("Started", run.started_at ? when(run.started_at) : null),
        fact("Ended", run.ended_at ? when(run.ended_at) : null),
        fact("Duration", run.started_at ? fmtDuration(end - start) : ""),
        fact("Function attempt", String(run.attempt + 1))),
      run.status === "completed" ? h("div", null, h("h2", null, "Output"),
        jsonView(run.output, { id: "run-output", key: "output", open })) : null,
      run.error ? h("div", null, h("h2", null, "Error"), errorBlock(run.error, { id: "run-error", key: "error", open })) : null,
      h("h2", null, "Steps"),
      waterfall(run, { expanded, open, final, rerun, rerender: render }),
      h("h2", null, run.events.length > 1 ? `Trigger events (${run.events.length})` : "Trigger event"),
      h("div", { id: "trigger" }, run.events.length === 0
        ? h("div", { class: "panel subtle" }, "No trigger event.")
        : run.events.map((e) => h("div", { class: "panel" },
          h("div", { class: "toolbar" }, h("strong", null, e.name), eventLink(e.id), when(e.ts / 1000)),
          jsonView(e.data, { key: `event:${e.id}`, open })))),
      h("h2", null, "History"),
      historyTable(run.history));
  }

  async function refresh(force) {
    const fresh = await found(`/v1/runs/${enc(runId)}`);
    if (fresh === null) {
      fill(root, h("div", { class: "notice bad" }, "No run has the id ", h("code", null, runId), "."));
      return false; // asked once: a missing run is not polled
    }
    const key = JSON.stringify(fresh);
    if (!force && key === lastKey && FINAL.has(fresh.status)) return true;
    lastKey = key;
    run = fresh;
    render();
    return true;
  }

  return poller(() => refresh(false));
}

function historyTable(history) {
  return h("div", { class: "panel flush" }, h("table", { class: "list", id: "history" },
    h("thead", null, h("tr", null, h("th", null, "At"), h("th", null, "What"), h("th", null, "Detail"))),
    h("tbody", null, history.map((entry) => h("tr", null,
      h("td", { class: "subtle nowrap" }, fmtTime(entry.at)),
      h("td", null, entry.kind),
      h("td", null, entry.data && Object.keys(entry.data).length
        ? h("div", { class: "preview", title: JSON.stringify(entry.data) }, JSON.stringify(entry.data)) : ""))))));
}

// A step id used again in a run (a step in a loop) keeps its id; the occurrence (0, 1, ...)
// tells the uses apart: shown as "repeat", "repeat #2", ...; keyed as `id#occurrence`.
const stepLabel = (step) => (step.occurrence ? `${step.id} #${step.occurrence + 1}` : step.id);
const stepKey = (id, occurrence) => `${id}#${occurrence || 0}`;

// the failed attempts of each step, from the history: {step key: [entry, ...]}
function retriesByStep(run) {
  const retries = {};
  for (const entry of run.history) {
    if (entry.kind === "step.retrying" && entry.data && entry.data.step) {
      const key = stepKey(entry.data.step, entry.data.occurrence);
      (retries[key] = retries[key] || []).push(entry);
    }
  }
  return retries;
}

// The steps on one time axis from the run's start. Steps a rerun kept from another run ran
// then, not in this run: they are listed apart, outside the axis.
function waterfall(run, ctx) {
  const all = [...run.steps].sort((a, b) => (a.started_at || 0) - (b.started_at || 0));
  const kept = all.filter((s) => s.kept_from);
  const steps = all.filter((s) => !s.kept_from);
  const panel = h("div", { class: "panel flush waterfall", id: "waterfall" });
  const retries = retriesByStep(run);
  if (kept.length) {
    panel.append(h("div", { class: "wf-kept-head", id: "kept-steps" }, `Kept from run `, runLink(kept[0].kept_from),
      h("span", { class: "subtle" }, ` (${kept.length} completed step${kept.length === 1 ? "" : "s"}, not run again)`)));
    for (const step of kept) {
      const row = stepRow(step, ctx, h("div", { class: "wf-track kept" }, h("span", { class: "subtle" }, "kept")),
        [h("span", { class: "dur" }, fmtDuration(step.ended_at - step.started_at)), " · ", badge("kept")]);
      panel.append(row);
      if (ctx.expanded.has(stepKey(step.id, step.occurrence))) panel.append(stepDetail(step, [], ctx));
    }
  }
  if (steps.length === 0) {
    panel.append(h("div", { class: "empty" }, ctx.final ? "This run ran no steps." : "No step has run yet."));
    return panel;
  }
  const start0 = Math.min(run.started_at || run.created_at, ...steps.map((s) => s.started_at || Infinity),
    ...steps.flatMap((s) => (retries[stepKey(s.id, s.occurrence)] || []).map((e) => e.at)));
  const ends = steps.map((s) => s.ended_at || 0);
  let t1 = Math.max(run.ended_at || 0, ...ends, ctx.final ? 0 : now());
  if (t1 <= start0) t1 = start0 + 0.001;
  const span = t1 - start0;
  const pct = (t) => `${(Math.min(Math.max(t - start0, 0), span) / span) * 100}%`;

  panel.append(h("div", { class: "wf-head" }, h("div", null, "Step"),
    h("div", { class: "wf-axis" }, h("span", null, "0"), h("span", null, fmtDuration(span / 2)), h("span", { id: "wf-span" }, fmtDuration(span))),
    h("div", { class: "right" }, "Duration · attempts")));

  for (const step of steps) {
    const stepRetries = retries[stepKey(step.id, step.occurrence)] || [];
    const firstStart = stepRetries.length ? Math.min(step.started_at || Infinity, ...stepRetries.map((e) => e.at)) : step.started_at;
    const waiting = !step.ended_at && OPEN_STATUSES.includes(step.status);
    const start = step.started_at || start0;
    const end = step.ended_at || (waiting ? Math.min(step.wake_at || t1, t1) : (ctx.final ? start : t1));
    const bar = h("div", { class: `wf-bar ${step.status} ${step.kind}${waiting && (step.wake_at || 0) > t1 ? " open-ended" : ""}`,
      style: `left:${pct(start)};width:calc(${pct(end)} - ${pct(start)})` });
    const retrySpan = stepRetries.length && firstStart < start
      ? h("div", { class: "wf-bar retry-span", style: `left:${pct(firstStart)};width:calc(${pct(start)} - ${pct(firstStart)})` }) : null;
    const track = h("div", { class: "wf-track" }, retrySpan, bar,
      stepRetries.map((e) => h("span", { class: "wf-tick", title: `attempt failed: ${(e.data.error || {}).message || ""}`, style: `left:${pct(e.at)}` })));
    let meta;
    if (step.status === "cancelled") meta = `cancelled after ${fmtDuration(end - start)}`;
    else if (step.kind === "sleep" && step.status === "sleeping") meta = `wakes in ${fmtDuration(Math.max(0, step.wake_at - now()))}`;
    else if (step.kind === "wait" && step.status === "waiting") meta = `waiting for ${(step.detail || {}).event || "an event"}`;
    else if (step.kind === "invoke" && step.status === "invoking") meta = "waiting for the invoked run";
    else meta = fmtDuration((step.ended_at || end) - (firstStart || start));
    panel.append(stepRow(step, ctx, track,
      [h("span", { class: "dur" }, meta), " · ", badge(step.status), step.attempts > 1 ? ` ${step.attempts}×` : ""]));
    if (ctx.expanded.has(stepKey(step.id, step.occurrence))) panel.append(stepDetail(step, stepRetries, ctx));
  }
  return panel;
}

function stepRow(step, ctx, track, meta) {
  const key = stepKey(step.id, step.occurrence);
  const isOpen = ctx.expanded.has(key);
  return h("div", { class: `wf-row${isOpen ? " open" : ""}${step.kept_from ? " kept" : ""}`, "data-step-id": step.id,
    "data-step-occurrence": step.occurrence || 0, role: "button", tabindex: "0",
    onclick: () => { if (isOpen) ctx.expanded.delete(key); else ctx.expanded.add(key); ctx.rerender(); } },
  h("div", { class: "wf-name" }, h("span", { class: "kind" }, KIND_LABEL[step.kind] || step.kind),
    h("span", { class: "step-id", title: stepLabel(step) }, stepLabel(step))),
  track,
  h("div", { class: "wf-meta" }, meta));
}

function stepDetail(step, stepRetries, ctx) {
  const body = h("div", { class: "wf-detail", "data-step-detail": step.id });
  body.append(h("div", { class: "row" },
    step.kept_from ? h("span", { class: "kept-note" }, "kept from run ", runLink(step.kept_from), " · ") : null,
    h("span", { class: "subtle" }, `started ${fmtTime(step.started_at)}`),
    step.ended_at ? h("span", { class: "subtle" }, `· ended ${fmtTime(step.ended_at)}`) : null,
    step.wake_at && !step.ended_at ? h("span", { class: "subtle" }, `· resumes by ${fmtTime(step.wake_at)}`) : null,
    step.kind === "run" ? h("span", { class: "subtle" }, `· ${step.attempts} attempt${step.attempts === 1 ? "" : "s"}`) : null,
    // a rerun starts from a step id's first use: offered there only, where it means that
    step.occurrence ? null : h("span", { class: "actions" }, h("button", { class: "btn small", type: "button",
      "data-rerun-from": step.id, onclick: (e) => { e.stopPropagation(); ctx.rerun(step.id); } }, "Rerun from this step"))));
  if (step.detail) body.append(h("div", { class: "field" }, h("label", null, "Detail"), jsonView(step.detail)));
  if (stepRetries.length) {
    body.append(h("label", null, "Failed attempts"), h("ol", { class: "attempts" }, stepRetries.map((e, n) => {
      const error = e.data.error || {};
      return h("li", { "data-attempt": String(n + 1) },
        h("div", null, h("span", { class: "subtle" }, `attempt ${n + 1} · ${fmtTime(e.at)} `),
          h("span", { class: "attempt-error" }, `${error.name || "Error"}: ${error.message || ""}`),
          e.data.at ? h("span", { class: "subtle" }, ` (retry at ${fmtTime(e.data.at)})`) : null),
        error.stack ? errorStack(error.stack, `${step.id}:attempt:${n}`, ctx.open) : null);
    })));
  }
  const stop = (e) => e.stopPropagation();
  if (step.error && step.status !== "retrying") {
    body.append(h("label", null, step.attempts > 1 ? `Error of attempt ${step.attempts}` : "Error"),
      h("div", { class: "step-error", onclick: stop }, errorBlock(step.error, { key: `${step.id}:error`, open: ctx.open })));
  } else if (step.status === "completed") {
    body.append(h("label", null, "Output"), h("div", { class: "step-output", onclick: stop },
      jsonView(step.output, { key: `${step.id}:output`, open: ctx.open })));
  }
  return body;
}

function errorStack(stack, key, open) {
  const details = h("details", { class: "stack", open: open.has(key) },
    h("summary", null, "stack"), h("pre", { class: "json error" }, stack));
  details.addEventListener("toggle", () => { if (details.open) open.add(key); else open.delete(key); });
  return details;
}
