"""The one path from events to runs: every event stepstone stores, whatever its source
(a send, the HTTP intake, a step's send_event, an invoke, a run's end, a cron tick) and
every run it starts (a rerun included) is planned here: triggers matched, cancel rules
attached, flow control evaluated. The store then resumes the waits the events match."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from .clock import Clock
from .errors import ConfigError
from .events import validate_all
from .function import CronTrigger, FunctionDef
from .ids import new_id
from .limits import Limits
from .records import Event, Run, RunStatus, StepRecord
from .registry import Registry
from .serde import dumps, size_of
from .store import NewEvent, NewRun, Wait, WaitKind
from .store.base import NO_FLOW
from .tracecontext import SpanRef

FINISHED = "stepstone/function.finished"
FAILED = "stepstone/function.failed"
CANCELLED = "stepstone/function.cancelled"
INVOKED = "stepstone/function.invoked"
CRON_EVENT = "stepstone/scheduled.timer"
MAX_WAIT = 366 * 86400.0

RawEvents = Event | Mapping[str, Any] | Sequence[Event | Mapping[str, Any]]


class Planner:
    def __init__(self, registry: Registry, clock: Clock, limits: Limits) -> None:
        self.registry = registry
        self.clock = clock
        self.limits = limits

    def events(
        self,
        events: RawEvents,
        *,
        internal: bool = False,
        exclude_function: str | None = None,
        trace: SpanRef | None = None,
    ) -> list[NewEvent]:
        """Validate events and plan the runs they trigger (nothing is stored). `trace`: the
        span that sends them (its traceparent and tracestate go with those that carry no
        trace of their own)."""
        now = self.clock.now()
        return [
            self._planned(_traced(event, trace), data_json, now, exclude_function)
            for event, data_json in validate_all(events, self.limits, internal=internal)
        ]

    def _planned(
        self, event: Event, data_json: str, now: float, exclude_function: str | None
    ) -> NewEvent:
        as_dict = event.to_dict()
        runs = [
            self.new_run(fn, event, now)
            for fn in self.registry.all()
            if fn.id != exclude_function and fn.matches(event.name, as_dict)
        ]
        return NewEvent(event, data_json, now, runs)

    def new_run(
        self,
        fn: FunctionDef,
        event: Event,
        now: float,
        *,
        available_at: float | None = None,
        parent_run_id: str | None = None,
        parent_step: str | None = None,
        event_ids: list[str] | None = None,
    ) -> NewRun:
        """A run of `fn` for `event`, with the cancel rules it listens for and its flow plan."""
        run_id = new_id()
        trigger = event.to_dict()
        waits = [
            Wait(
                run_id,
                f"cancel:{index}",
                rule.event,
                rule.condition.source if rule.condition else None,
                trigger,
                now + (rule.timeout if rule.timeout is not None else MAX_WAIT),
                kind=WaitKind.CANCEL,
            )
            for index, rule in enumerate(fn.cancel_on)
        ]
        flow = NO_FLOW if fn.flow is None else fn.flow.plan(trigger)
        return NewRun(
            run_id,
            fn.id,
            [event.id or ""] if event_ids is None else event_ids,
            now,
            now if available_at is None else available_at,
            parent_run_id=parent_run_id,
            parent_step=parent_step,
            waits=waits,
            flow=flow,
        )

    def rerun(self, run: Run, trigger: Event | None, now: float) -> NewRun:
        """A new run of `run`'s function with the same events, planned as the first was
        (cancel rules, flow control); a function no process knows any more runs plain."""
        try:
            fn: FunctionDef | None = self.registry.get(run.function_id)
        except ConfigError:
            fn = None
        if fn is None or trigger is None:
            return NewRun(new_id(), run.function_id, list(run.event_ids), now, now)
        return self.new_run(fn, trigger, now, event_ids=list(run.event_ids))

    def invoke_event(
        self,
        parent_run_id: str,
        step: StepRecord,
        function_id: str,
        data: dict[str, Any],
        *,
        trace: SpanRef | None = None,
    ) -> NewEvent:
        """The event that starts an invoked run; only the invoked function runs, whatever
        else listens to that name. `trace`: the invoking step's span."""
        raw = {"name": INVOKED, "id": f"{parent_run_id}:{step.hashed_id}:invoke", "data": data}
        [(event, data_json)] = validate_all(raw, self.limits, internal=True)
        event = _traced(event, trace)
        now = self.clock.now()
        fn = self.registry.get(function_id)
        child = self.new_run(
            fn, event, now, parent_run_id=parent_run_id, parent_step=step.hashed_id
        )
        return NewEvent(event, data_json, now, [child])

    def direct_invoke(self, fn: FunctionDef, data: dict[str, Any]) -> NewEvent:
        """The event of an operator's invoke (the dashboard's, `App.invoke`): a run of `fn`
        alone, as an invoke from a step starts one, but with no parent to resume."""
        raw = {"name": INVOKED, "data": data}
        [(event, data_json)] = validate_all(raw, self.limits, internal=True)
        now = self.clock.now()
        return NewEvent(event, data_json, now, [self.new_run(fn, event, now)])

    def cron_event(self, fn: FunctionDef, trigger: CronTrigger, tick: float) -> NewEvent:
        """The event of one cron tick and the run it starts. Its id makes the tick one run
        however many workers fire it."""
        raw = {
            "name": CRON_EVENT,
            "id": f"cron:{fn.id}:{trigger.cron}:{int(tick)}",
            "data": {"cron": trigger.cron, "function_id": fn.id, "tick": tick},
            "ts": int(tick * 1000),
        }
        [(event, data_json)] = validate_all(raw, self.limits, internal=True)
        start = tick + (random.uniform(0, trigger.jitter) if trigger.jitter else 0.0)
        return NewEvent(event, data_json, tick, [self.new_run(fn, event, tick, available_at=start)])

    def lifecycle_events(
        self,
        run: Run,
        status: RunStatus,
        error: dict[str, Any] | None = None,
        output: Any = None,
        event: Event | None = None,
        trace: SpanRef | None = None,
    ) -> list[NewEvent]:
        """The internal events that announce a run's end, with the runs they trigger.

        Their ids derive from the run, so announcing the same end twice stores it once.
        Built here rather than validated like a user's: every part is already plain JSON.
        `trace`: the run's span (an on_failure run continues its trace).
        """
        data = {
            "function_id": run.function_id,
            "run_id": run.id,
            "event_ids": run.event_ids,
            "event": None if event is None else event.to_dict(),
        }
        named: list[tuple[str, str, dict[str, Any]]] = []
        if status is RunStatus.FAILED:
            named.append((FAILED, f"{run.id}:failed", {**data, "error": error}))
        elif status is RunStatus.CANCELLED:
            named.append((CANCELLED, f"{run.id}:cancelled", data))
        finished = {**data, "status": status.value, "output": output, "error": error}
        named.append((FINISHED, f"{run.id}:finished", finished))
        now, ts = self.clock.now(), int(time.time() * 1000)
        out = []
        for name, event_id, payload in named:
            payload, data_json = _within_event_size(payload, name, self.limits.max_event_size)
            announced = _traced(Event(name=name, data=payload, id=event_id, ts=ts), trace)
            out.append(self._planned(announced, data_json, now, run.function_id))
        return out


def _traced(event: Event, trace: SpanRef | None) -> Event:
    """The event with the trace context of `trace`, unless it carries one of its own."""
    if trace is None or event.trace is not None:
        return event
    return replace(event, trace=trace.traceparent, tracestate=trace.state)


def _within_event_size(data: dict[str, Any], name: str, limit: int) -> tuple[dict[str, Any], str]:
    """A lifecycle event's data and its JSON, within the event size limit: a run's output
    or error too large to announce is left out, with a note (the run keeps it whole)."""
    data_json = dumps(data)
    if size_of(data_json) + size_of(name) <= limit:
        return data, data_json
    data = dict(data)
    for field in ("output", "error", "event"):
        if data.get(field) is not None:
            size = size_of(dumps(data[field]))
            data[field] = None
            data[f"{field}_omitted"] = (
                f"{size} bytes, over the event size limit; read it from the run"
            )
            data_json = dumps(data)
            if size_of(data_json) + size_of(name) <= limit:
                break
    return data, data_json
