"""Turns the executor's ops into store writes, all fenced by the run's lease."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import ops
from ..records import HistoryEntry, RunStatus, StepRecord, StepStatus
from ..store import Claim, NewEvent, Store, Wait
from ..waitkeys import index_of
from . import runlog

if TYPE_CHECKING:
    from ..app import App

INVOKED = "stepstone/function.invoked"


class RunWriter:
    """Persists one claimed run's checkpoints and outcome."""

    def __init__(
        self,
        app: App,
        store: Store,
        claim: Claim,
        alone: Callable[[], bool] = lambda: False,
    ) -> None:
        self._app = app
        self._store = store
        self._claim = claim
        self._lease = claim.lease
        self._alone = alone  # whether this is the only run its worker is executing
        self.deadline: float | None = None  # timeouts.finish: a suspended run wakes by then
        # the run's log lines not saved yet: they ride along with the next write
        self.take_logs: Callable[[], list[HistoryEntry]] = list
        self._began = app.clock.now()
        runlog.started(claim, self._began)

    async def checkpoint(self, op: ops.Checkpoint) -> Any:
        lease, store, now = self._lease, self._store, self._app.clock.now()
        if isinstance(op, ops.SaveStep):
            entry = _step_history(op.step, now)
            history = self.take_logs() + ([entry] if entry is not None else [])
            inline = op.alone and self._alone()
            await store.save_step(lease, op.step, op.output_json, history, inline=inline)
            runlog.step_saved(self._app, self._claim.run, op.step, now)
        elif isinstance(op, ops.SendEvents):
            prepared = self._app.prepare_events(op.events)
            await store.save_step_with_events(lease, op.step, _ids_json(op.step), prepared)
            self._app.wake_workers()
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
            child = self._invoke_event(op, now)
            await store.start_invoke(lease, op.step, child)
            self._app.wake_workers()
        elif isinstance(op, ops.ExpireStep):
            return await store.expire_step(lease, op.step)
        else:  # pragma: no cover - the op types are closed
            raise TypeError(f"unknown op {op!r}")
        return None

    def _invoke_event(self, op: ops.StartInvoke, now: float) -> NewEvent:
        raw = {
            "name": INVOKED,
            "id": f"{self._lease.run_id}:{op.step.hashed_id}:invoke",
            "data": op.data,
        }
        prepared = self._app.prepare_events(raw, internal=True)[0]
        fn = self._app.function_def(op.function_id)
        run = self._app.new_run(
            fn,
            prepared.event,
            now,
            parent_run_id=self._lease.run_id,
            parent_step=op.step.hashed_id,
        )
        # only the invoked function runs, whatever else listens to that name
        return NewEvent(prepared.event, prepared.data_json, now, [run])

    async def outcome(self, outcome: ops.Outcome, *, cancel: str | None = None) -> None:
        app, store, lease = self._app, self._store, self._lease
        now = app.clock.now()
        run = self._claim.run
        if cancel is not None:
            error = None
            if cancel.startswith("timed out"):
                error = {
                    "name": "FunctionTimeout",
                    "message": f"run {run.id} {cancel}",
                    "stack": "",
                }
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
            status = _suspended_status(outcome.reasons)
            await store.reschedule(
                lease,
                at=at,
                now=now,
                status=status,
                history=[
                    *self.take_logs(),
                    HistoryEntry(now, "suspended", {"until": at, "why": outcome.reasons}),
                ],
            )
        runlog.outcome(app, self._claim, outcome, cancel, self._began, now)

    async def finish(self, status: RunStatus, output_json: str | None, error: Any) -> None:
        now = self._app.clock.now()
        output = None if output_json is None else json.loads(output_json)
        first = self._claim.events[0] if self._claim.events else None
        follow_up = self._app.lifecycle_events(self._claim.run, status, error, output, first)
        await self._store.finish(
            self._lease,
            status=status,
            output_json=output_json,
            error=error,
            at=now,
            follow_up=follow_up,
            history=self.take_logs(),
        )
        self._app.wake_workers()


def _suspended_status(reasons: list[str]) -> RunStatus:
    if reasons and all(r.startswith("sleeping") for r in reasons):
        return RunStatus.SLEEPING
    if reasons and all(r.startswith(("waiting", "invoking", "sleeping")) for r in reasons):
        return RunStatus.WAITING
    return RunStatus.RUNNING


def _step_history(step: StepRecord, now: float) -> HistoryEntry | None:
    if step.status is StepStatus.RETRYING:
        return HistoryEntry(
            now,
            "step.retrying",
            {
                "step": step.id,
                "attempt": step.attempts,
                "at": step.wake_at,
                "error": _short(step.error),
            },
        )
    if step.status is StepStatus.FAILED:
        return HistoryEntry(
            now,
            "step.failed",
            {
                "step": step.id,
                "attempts": step.attempts,
                "error": _short(step.error),
            },
        )
    if step.status is StepStatus.SLEEPING:
        return HistoryEntry(now, "step.sleeping", {"step": step.id, "until": step.wake_at})
    return None


def _short(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"name": error.get("name"), "message": error.get("message")}


def _ids_json(step: StepRecord) -> str:
    return json.dumps(step.output)
