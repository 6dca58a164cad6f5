"""Turns the executor's ops into store writes, all fenced by the run's lease."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .. import metrics, ops, tracing
from ..errors import error_record
from ..records import HistoryEntry, RunStatus, StepRecord, StepStatus
from ..runtime import Runtime
from ..store import Claim, IntakeReport, Store, Wait
from ..tracecontext import SpanRef
from ..waitkeys import index_of
from . import runlog


class RunWriter:
    """Persists one claimed run's checkpoints and outcome."""

    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        claim: Claim,
        alone: Callable[[], bool] = lambda: False,
    ) -> None:
        self._runtime = runtime
        self._store = store
        self._claim = claim
        self._lease = claim.lease
        self._alone = alone  # whether this is the only run its worker is executing
        self.deadline: float | None = None  # timeouts.finish: a suspended run wakes by then
        # the run's log lines not saved yet: they ride along with the next write
        self.take_logs: Callable[[], list[HistoryEntry]] = list
        self._began = runtime.clock.now()
        runlog.started(claim, self._began)
        if claim.taken_over:
            metrics.taken_over()
        # current in this task from here on: the invocation's steps are its children
        self._span = tracing.invocation_started(claim)

    async def checkpoint(self, op: ops.Checkpoint) -> Any:
        began = time.perf_counter()
        step = op.step
        with tracing.checkpoint(self._claim.run, step) as span:
            if type(op) is ops.SaveStep:  # nearly every checkpoint: no coroutine more
                now = self._runtime.clock.now()
                entry = _step_history(step, now)
                history = self.take_logs()
                if entry is not None:
                    history.append(entry)
                inline = op.alone and self._alone()
                await self._store.save_step(
                    self._lease, step, op.output_json, history, inline=inline
                )
                runlog.step_saved(self._runtime.registry, self._claim.run, step, now)
                result = None
            else:
                result = await self._checkpoint(op, span)
        if metrics.ENABLED:
            metrics.checkpointed(self._claim.run.function_id, step, time.perf_counter() - began)
        return result

    async def _checkpoint(self, op: ops.Checkpoint, span: SpanRef | None) -> Any:
        """Writes any op but SaveStep; `span`: the step's, whose trace context the events
        it sends carry."""
        lease, store, now = self._lease, self._store, self._runtime.clock.now()
        if isinstance(op, ops.SendEvents):
            planned = self._runtime.planner.events(op.events, trace=span)
            metrics.events_received(len(planned))
            report = await store.save_step_with_events(lease, op.step, _ids_json(op.step), planned)
            await self._settle(report)
        elif isinstance(op, ops.RegisterWait):
            trigger = self._claim.events[0].to_dict() if self._claim.events else {}
            index = index_of(op.if_, trigger)
            wait = Wait(
                lease.run_id,
                op.step.hashed_id,
                op.event,
                op.if_,
                trigger,
                op.step.wake_at or now,
                match_path=index[0] if index else None,
                match_key=index[1] if index else None,
            )
            await store.register_wait(lease, op.step, wait)
        elif isinstance(op, ops.StartInvoke):
            child = self._runtime.planner.invoke_event(
                lease.run_id, op.step, op.function_id, op.data, trace=span
            )
            await self._settle(await store.start_invoke(lease, op.step, child))
        elif isinstance(op, ops.ExpireStep):
            return await store.expire_step(lease, op.step)
        else:  # pragma: no cover - the op types are closed
            raise TypeError(f"unknown op {op!r}")
        return None

    async def _settle(self, report: IntakeReport) -> None:
        """The runs an intake cancelled stop and are announced; workers wake for the rest."""
        await self._runtime.intake.settle(self._store, report)

    async def outcome(self, outcome: ops.Outcome, *, stop: ops.Stop | None = None) -> None:
        store, lease = self._store, self._lease
        now = self._runtime.clock.now()
        run = self._claim.run
        if stop is not None:
            error = None
            if stop.kind is ops.StopKind.TIMED_OUT:
                error = error_record("FunctionTimeout", f"run {run.id} {stop}")
            await self.finish(RunStatus.CANCELLED, None, error)
        elif isinstance(outcome, ops.RunCompleted):
            await self.finish(RunStatus.COMPLETED, outcome.output_json, None)
        elif isinstance(outcome, ops.RunFailed):
            await self.finish(RunStatus.FAILED, None, outcome.error)
        elif isinstance(outcome, ops.RunRetry):
            at = min(outcome.at, self.deadline or outcome.at)
            entry = HistoryEntry(
                now,
                "retrying",
                {"at": outcome.at, "attempt": run.attempt + 1, "error": _short(outcome.error)},
            )
            await store.reschedule(
                lease,
                at=at,
                now=now,
                status=RunStatus.RUNNING,
                attempt=run.attempt + 1,
                history=[*self.take_logs(), entry],
            )
        elif isinstance(outcome, ops.Suspended):
            at = now if outcome.at is None else outcome.at
            at = min(at, self.deadline or at)
            status = _suspended_status(outcome.kinds)
            await store.reschedule(
                lease,
                at=at,
                now=now,
                status=status,
                history=[
                    *self.take_logs(),
                    HistoryEntry(
                        now,
                        "suspended",
                        {"until": at, "why": [each.detail for each in outcome.suspensions]},
                    ),
                ],
            )
        runlog.outcome(self._runtime.registry, self._claim, outcome, stop, self._began, now)
        self._span.end(*_outcome_label(outcome, stop))

    async def finish(self, status: RunStatus, output_json: str | None, error: Any) -> None:
        now = self._runtime.clock.now()
        output = None if output_json is None else json.loads(output_json)
        run, first = self._claim.run, self._claim.events[0] if self._claim.events else None
        run_span = tracing.run_span(run.id, first)  # the run's end continues its trace
        follow_up = self._runtime.planner.lifecycle_events(
            run, status, error, output, first, run_span
        )
        report = await self._store.finish(
            self._lease,
            status=status,
            output_json=output_json,
            error=error,
            at=now,
            follow_up=follow_up,
            history=self.take_logs(),
        )
        metrics.run_ended(run.function_id, status, now - (run.started_at or run.created_at))
        # the invocation's span ends first, then the run's, which holds it
        self._span.end(status.value, error if status is RunStatus.FAILED else None)
        tracing.run_ended(self._claim, status, error, self._runtime.clock.now())
        await self._settle(report)


def _outcome_label(
    outcome: ops.Outcome, stop: ops.Stop | None
) -> tuple[str, dict[str, Any] | None]:
    """How an invocation ended, for its span: a word, and the error that failed it."""
    if stop is not None:
        return RunStatus.CANCELLED.value, None
    if isinstance(outcome, ops.RunCompleted):
        return RunStatus.COMPLETED.value, None
    if isinstance(outcome, ops.RunFailed):
        return RunStatus.FAILED.value, outcome.error
    if isinstance(outcome, ops.RunRetry):
        return "retrying", outcome.error
    if isinstance(outcome, ops.Suspended):
        return "suspended", None
    return "abandoned", None


_WAITING = {ops.SuspendKind.SLEEP, ops.SuspendKind.EVENT, ops.SuspendKind.INVOKE}


def _suspended_status(kinds: set[ops.SuspendKind]) -> RunStatus:
    """Sleeping when only time wakes it, waiting when something else may, else running (a
    step's retry is part of running)."""
    if kinds and kinds <= {ops.SuspendKind.SLEEP}:
        return RunStatus.SLEEPING
    if kinds and kinds <= _WAITING:
        return RunStatus.WAITING
    return RunStatus.RUNNING


def _step_history(step: StepRecord, now: float) -> HistoryEntry | None:
    if step.status is StepStatus.RETRYING:
        return HistoryEntry(
            now,
            "step.retrying",
            {
                **_step_named(step),
                "attempt": step.attempts,
                "at": step.wake_at,
                "error": _with_stack(step.error),
            },
        )
    if step.status is StepStatus.FAILED:
        return HistoryEntry(
            now,
            "step.failed",
            {
                **_step_named(step),
                "attempts": step.attempts,
                "error": _short(step.error),
            },
        )
    if step.status is StepStatus.SLEEPING:
        return HistoryEntry(now, "step.sleeping", {**_step_named(step), "until": step.wake_at})
    return None


def _step_named(step: StepRecord) -> dict[str, Any]:
    """A history entry's step: its id, and which use of that id it is when not the first."""
    return (
        {"step": step.id, "occurrence": step.occurrence} if step.occurrence else {"step": step.id}
    )


def _short(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"name": error.get("name"), "message": error.get("message")}


MAX_STACK = 8192  # of a failed attempt's stack kept in the history (the end: the raise)


def _with_stack(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """A failed attempt's error as its history entry keeps it: the dashboard shows each
    attempt's stack, and the step itself keeps only its latest error."""
    short = _short(error)
    if short is None or error is None:
        return short
    stack = str(error.get("stack") or "")
    return {**short, "stack": stack[-MAX_STACK:]}


def _ids_json(step: StepRecord) -> str:
    return json.dumps(step.output)
