"""The step tools whose work the engine does, not user code: step.sleep, sleep_until,
wait_for_event, invoke and send_event. Each saves an op; a sleep, a wait or an invoke
not over yet then stops the invocation, and the run is woken by its timer, the event,
or the end of the run it invoked (step.run, in `executor`, goes on at once instead)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from . import ops
from .durations import Duration, parse_duration
from .errors import LimitExceededError, StepError, error_record
from .executor_state import InvocationState
from .records import Event, StepRecord, StepStatus
from .serde import dumps

MAX_WAIT = 366 * 86400.0


class StepTools(InvocationState):
    """An invocation's step tools but step.run (`executor.Invocation` adds that, and the
    call of the function)."""

    def sleep_until(
        self, step_id: str, when: float | None, duration: float | None
    ) -> asyncio.Future[Any]:
        use, prior = self._begin(step_id)
        if prior is not None and prior.status is StepStatus.COMPLETED:
            return self._done(None)
        now = self._clock.now()
        if prior is not None and prior.wake_at is not None:
            until = prior.wake_at
        else:
            until = when if when is not None else now + (duration or 0.0)
        if until - now > MAX_WAIT:
            return self._failed(
                LimitExceededError(f"step.sleep({use.label!r}) is longer than the limit of 1 year")
            )
        record = StepRecord(
            id=use.id,
            occurrence=use.occurrence,
            hashed_id=use.hashed,
            status=StepStatus.SLEEPING,
            kind="sleep",
            started_at=prior.started_at if prior else now,
            wake_at=until,
        )
        if until <= now:
            done = replace(record, status=StepStatus.COMPLETED, ended_at=now)
            return self._start(self._save_then(done, None))
        if prior is not None:
            return self._failed(
                self._suspend(ops.SuspendKind.SLEEP, until, f"sleeping until {until}")
            )
        sleep = ops.Suspension(ops.SuspendKind.SLEEP, until, "sleeping")
        return self._start(self._save_then_suspend(ops.SaveStep(record), sleep))

    async def _save_then(self, record: StepRecord, value: Any) -> Any:
        await self._emit(ops.SaveStep(record, output_json=dumps(value)))
        return value

    async def _save_then_suspend(self, op: ops.Checkpoint, why: ops.Suspension) -> Any:
        await self._emit(op)
        raise self._suspend(why.kind, why.until, why.detail)

    def wait_for_event(
        self, step_id: str, event: str, timeout: Duration, if_: str | None
    ) -> asyncio.Future[Any]:
        use, prior = self._begin(step_id)
        if prior is not None and prior.status is StepStatus.COMPLETED:
            return self._done(None if prior.output is None else Event.from_dict(prior.output))
        if prior is not None:
            if prior.wake_at is not None and prior.wake_at <= self._clock.now():
                timed_out = replace(prior, status=StepStatus.COMPLETED, ended_at=self._clock.now())
                return self._start(self._expire(timed_out))
            return self._failed(
                self._suspend(ops.SuspendKind.EVENT, prior.wake_at, f"waiting for {event!r}")
            )
        seconds = parse_duration(timeout, what=f"step.wait_for_event({use.label!r}) timeout")
        if seconds > MAX_WAIT:
            return self._failed(LimitExceededError("a wait_for_event timeout is at most 1 year"))
        if if_ is not None:
            from .expressions import Expression

            Expression(if_, where=f"step.wait_for_event({use.label!r}) if_")
        now = self._clock.now()
        record = StepRecord(
            id=use.id,
            occurrence=use.occurrence,
            hashed_id=use.hashed,
            status=StepStatus.WAITING,
            kind="wait",
            started_at=now,
            wake_at=now + seconds,
            detail={"event": event, "if": if_},
        )
        op = ops.RegisterWait(record, event, if_)
        return self._start(
            self._save_then_suspend(
                op, ops.Suspension(ops.SuspendKind.EVENT, now + seconds, f"waiting for {event!r}")
            )
        )

    async def _expire(self, record: StepRecord) -> Any:
        """Save a wait or invoke as timed out, unless it ended meanwhile; return its result."""
        current: StepRecord = await self._emit(ops.ExpireStep(record))
        if current.status is StepStatus.FAILED:
            raise StepError(current.id, current.error or {})
        if current.kind == "wait":
            return None if current.output is None else Event.from_dict(current.output)
        return current.output

    def invoke(
        self, step_id: str, function: Any, data: dict[str, Any] | None, timeout: Duration | None
    ) -> asyncio.Future[Any]:
        use, prior = self._begin(step_id)
        if prior is not None and prior.status is StepStatus.COMPLETED:
            return self._done(prior.output)
        if prior is not None and prior.status is StepStatus.FAILED:
            return self._failed(StepError(use.id, prior.error or {}))
        if prior is not None:
            if prior.wake_at is not None and prior.wake_at <= self._clock.now():
                error = error_record(
                    "InvokeTimeoutError",
                    f"step.invoke({use.label!r}) timed out before the invoked run ended",
                )
                timed_out = replace(
                    prior, status=StepStatus.FAILED, error=error, ended_at=self._clock.now()
                )
                return self._start(self._expire(timed_out))
            return self._failed(
                self._suspend(ops.SuspendKind.INVOKE, prior.wake_at, f"invoking {prior.detail}")
            )
        function_id = self._resolve_function(function)
        seconds = (
            MAX_WAIT
            if timeout is None
            else parse_duration(timeout, what=f"step.invoke({use.label!r}) timeout")
        )
        payload = data or {}
        dumps(payload, what=f"the data of step.invoke({use.label!r})")
        now = self._clock.now()
        record = StepRecord(
            id=use.id,
            occurrence=use.occurrence,
            hashed_id=use.hashed,
            status=StepStatus.INVOKING,
            kind="invoke",
            started_at=now,
            wake_at=now + min(seconds, MAX_WAIT),
            detail={"function_id": function_id},
        )
        op = ops.StartInvoke(record, function_id, payload)
        return self._start(
            self._save_then_suspend(
                op,
                ops.Suspension(ops.SuspendKind.INVOKE, record.wake_at, f"invoking {function_id}"),
            )
        )

    def send_event(self, step_id: str, events: Event | Sequence[Event]) -> asyncio.Future[Any]:
        use, prior = self._begin(step_id)
        if prior is not None and prior.status is StepStatus.COMPLETED:
            return self._done(prior.output)
        batch = [events] if isinstance(events, Event) else list(events)
        if self._prepare_events is None:
            raise RuntimeError("this invocation cannot send events")
        prepared = self._prepare_events(batch)
        now = self._clock.now()
        ids = [e["id"] for e in prepared]
        record = StepRecord(
            id=use.id,
            occurrence=use.occurrence,
            hashed_id=use.hashed,
            status=StepStatus.COMPLETED,
            attempts=1,
            kind="send",
            started_at=now,
            ended_at=now,
            output=ids,
        )
        return self._start(self._send(ops.SendEvents(record, prepared), ids))

    async def _send(self, op: ops.SendEvents, ids: list[str]) -> list[str]:
        await self._emit(op)
        return ids
