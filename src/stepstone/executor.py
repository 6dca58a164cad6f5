"""Runs one invocation of a function against its saved steps and emits ops.

The executor knows nothing of storage: it is handed the run's saved steps and an
`emit` coroutine that persists a checkpoint op, and it returns an outcome op.
Finished steps are checkpointed before their value is handed to the function, and
the function goes on in the same coroutine; replay happens only on a new invocation.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

from . import ops, tracing
from .clock import Clock
from .durations import Duration, parse_duration
from .errors import (
    InvalidStepIdError,
    LeaseLostError,
    LimitExceededError,
    NestedStepError,
    StepError,
    describe_error,
    error_record,
)
from .function import FunctionDef
from .ids import MAX_STEP_ID, StepIdCounter
from .limits import Limits
from .records import Event, HistoryEntry, StepRecord, StepStatus, step_label
from .retry import Backoff, decide_retry
from .serde import convert, dumps, size_of
from .step import Context, RunningStep, Step, SyncStep, running_step

log = logging.getLogger("stepstone.executor")

Emit = Callable[[ops.Checkpoint], Awaitable[Any]]
MAX_WAIT = 366 * 86400.0


class _Suspend(BaseException):
    """Stops the function: the run must wait. A BaseException so `except Exception` passes it."""


class _Abandon(BaseException):
    """Stops the function: write nothing more (lease lost, run cancelled, storage down)."""


@dataclass(frozen=True)
class _StepUse:
    """One use of a step id in this invocation: the id, which use it is, its hashed id."""

    id: str
    occurrence: int
    hashed: str

    @property
    def label(self) -> str:
        return step_label(self.id, self.occurrence)


@dataclass(frozen=True)
class InvocationInput:
    function: FunctionDef
    run_id: str
    attempt: int
    events: list[Event]
    steps: list[StepRecord]


MAX_LOG_LINES = 1000  # per invocation: more are dropped, with a note
MAX_LOG_CHARS = 4096


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """`ctx.logger`: quiet while saved steps are replayed; lines are also saved with the run."""

    def __init__(self, logger: logging.Logger, invocation: Invocation) -> None:
        super().__init__(logger, {"run_id": invocation.run_id})
        self._invocation = invocation

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self._invocation.replaying:
            return
        super().log(level, msg, *args, **kwargs)
        if level >= logging.INFO:
            try:
                text = str(msg) % args if args else str(msg)
            except (TypeError, ValueError):
                text = f"{msg} {args}"
            self._invocation.record_log(logging.getLevelName(level), text)


class Invocation:
    """One call of a function: replays saved steps, runs new ones, emits ops."""

    def __init__(
        self,
        data: InvocationInput,
        *,
        emit: Emit,
        clock: Clock,
        limits: Limits,
        backoff: Backoff,
        sync_pool: Executor | None = None,
        function_pool: Executor | None = None,
        retry_after_min: float = 1.0,
        resolve_function: Callable[[Any], str] | None = None,
        new_event_ids: Callable[[Sequence[Event]], list[dict[str, Any]]] | None = None,
        lease_held: Callable[[], bool] | None = None,
        renew_lease: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._data = data
        self._lease_held = lease_held
        self._renew_lease = renew_lease
        self._fn = data.function
        self._emit_op = emit
        self._clock = clock
        self._limits = limits
        self._backoff = backoff
        self._pool = sync_pool
        self._function_pool = function_pool
        self._retry_after_min = retry_after_min
        self._resolve_function = resolve_function or (lambda f: str(getattr(f, "id", f)))
        self._prepare_events = new_event_ids
        self._saved = {s.hashed_id: s for s in data.steps}
        self._ids = StepIdCounter()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._suspensions: list[ops.Suspension] = []
        self._stopping: str | None = None  # set when no new step may start
        self._abandoned: str | None = None
        self._steps_used = 0
        self._state_size: int | None = None  # measured when a new step output needs it
        self._pending_replays = sum(
            1 for s in data.steps if s.status in (StepStatus.COMPLETED, StepStatus.FAILED)
        )
        self._loop = asyncio.get_running_loop()
        self._logs: list[HistoryEntry] = []
        self._logs_taken = 0
        # step tools called inside a step's handler, by that step's hashed id: kept here, so
        # that the step and the run fail even when the handler catches the exception
        self._misuses: dict[str, NestedStepError] = {}

    @property
    def run_id(self) -> str:
        return self._data.run_id

    def record_log(self, level: str, text: str) -> None:
        count = self._logs_taken + len(self._logs)
        if count < MAX_LOG_LINES:
            entry = {"level": level, "message": text[:MAX_LOG_CHARS]}
            self._logs.append(HistoryEntry(self._clock.now(), "log", entry))
        elif count == MAX_LOG_LINES:
            note = {"level": "WARNING", "message": f"more than {MAX_LOG_LINES} lines: not saved"}
            self._logs.append(HistoryEntry(self._clock.now(), "log", note))

    def take_logs(self) -> list[HistoryEntry]:
        """Log lines not handed out yet (the engine saves them with its next write)."""
        taken, self._logs = self._logs, []
        self._logs_taken += len(taken)
        return taken

    def _state_bytes(self) -> int:
        """The run's saved state so far: its events and step outputs, serialized."""
        if self._state_size is None:
            data = self._data
            self._state_size = sum(size_of(json.dumps(e.to_dict())) for e in data.events) + sum(
                size_of(json.dumps(s.output)) for s in data.steps if s.output is not None
            )
        return self._state_size

    @property
    def replaying(self) -> bool:
        """True while the function is still going over steps it had already finished."""
        return self._pending_replays > 0

    # -- the invocation --------------------------------------------------------------
    async def execute(self) -> ops.Outcome:
        fn = self._fn
        step = Step(self)
        logger = RunLogger(logging.getLogger(f"stepstone.function.{fn.id}"), self)
        ctx = Context(
            event=self._data.events[0],
            events=list(self._data.events),
            step=step if fn.is_async else SyncStep(step, self._loop),
            run_id=self._data.run_id,
            function_attempt=self._data.attempt,
            function_id=fn.id,
            logger=logger,
        )
        failure: BaseException | None = None
        result: Any = None
        try:
            if fn.is_async:
                result = await fn.handler(ctx)
            else:
                context = contextvars.copy_context()
                result = await self._loop.run_in_executor(
                    self._function_pool, functools.partial(context.run, fn.handler, ctx)
                )
        except _Suspend:
            pass
        except _Abandon as exc:
            self._abandoned = self._abandoned or str(exc)
        except asyncio.CancelledError:
            self._abandoned = self._abandoned or "cancelled"
            raise
        except Exception as exc:
            failure = exc
        finally:
            self._stopping = self._stopping or "the invocation is ending"
            await self._drain()
        return self._outcome(result, failure)

    def stop(self, reason: str) -> None:
        """No new step may start; steps already running finish and are saved."""
        self._stopping = self._stopping or reason
        self._abandoned = self._abandoned or reason

    def _outcome(self, result: Any, failure: BaseException | None) -> ops.Outcome:
        if self._abandoned:
            return ops.Abandoned(self._abandoned)
        if self._misuses:  # a misuse is not retried, whatever the function did after it
            return ops.RunFailed(describe_error(next(iter(self._misuses.values()))))
        now = self._clock.now()
        if failure is not None:
            decision = decide_retry(
                failure,
                attempt=self._data.attempt,
                max_attempts=self._fn.max_attempts,
                now=now,
                backoff=self._backoff,
                retry_after_min=self._retry_after_min,
            )
            error = describe_error(failure)
            if decision.retry and decision.at is not None:
                return ops.RunRetry(error, decision.at)
            return ops.RunFailed(error)
        if self._suspensions:
            times = [each.until for each in self._suspensions if each.until is not None]
            return ops.Suspended(min(times) if times else None, list(self._suspensions))
        try:
            output = dumps(result, what=f"the return value of function {self._fn.id!r}")
        except Exception as exc:
            return ops.RunFailed(describe_error(exc))
        return ops.RunCompleted(output)

    async def _drain(self) -> None:
        """Wait for the steps still running (finished ones have left `_tasks` already)."""
        while self._tasks:
            pending = list(self._tasks)
            await asyncio.gather(*pending, return_exceptions=True)
            self._tasks.difference_update(pending)

    # -- helpers for the step tools ----------------------------------------------------
    def check_not_in_step(self, tool: str, step_id: str) -> None:
        outer = running_step.get()
        if outer is None:
            return
        misuse = NestedStepError(
            f"{tool}({step_id!r}) was called inside the handler of step {outer.label!r}; "
            "steps cannot be nested. Call it from the function body instead."
        )
        self._misuses.setdefault(outer.hashed_id, misuse)
        self._stopping = self._stopping or f"step {outer.label!r} called {tool} in its handler"
        raise misuse

    def _suspend(self, kind: ops.SuspendKind, at: float | None, detail: str) -> _Suspend:
        self._suspensions.append(ops.Suspension(kind, at, detail))
        self._stopping = self._stopping or detail
        return _Suspend(detail)

    def _begin(self, step_id: str) -> tuple[_StepUse, StepRecord | None]:
        if self._abandoned:
            raise _Abandon(self._abandoned)
        if not isinstance(step_id, str) or not step_id or len(step_id) > MAX_STEP_ID:
            got = f"{len(step_id)} characters" if isinstance(step_id, str) else repr(step_id)
            raise InvalidStepIdError(
                f"a step id is a non-empty string of at most {MAX_STEP_ID} characters; "
                f"function {self._fn.id!r} gave {got}"
            )
        use = _StepUse(step_id, *self._ids.next(step_id))
        prior = self._saved.get(use.hashed)
        self._steps_used += 1
        if self._steps_used > self._limits.max_steps:
            raise LimitExceededError(
                f"function {self._fn.id!r} ran more than {self._limits.max_steps} steps in one "
                f"run (at step {use.label!r}); raise Limits(max_steps=...) up to 10000 or split "
                "the work with step.invoke"
            )
        if prior is None or prior.status not in (StepStatus.COMPLETED, StepStatus.FAILED):
            self._pending_replays = 0
            if self._stopping:
                # another part of the run stopped the invocation: this step waits for the
                # next one, as that part does
                first = self._suspensions[0].kind if self._suspensions else ops.SuspendKind.RETRY
                raise self._suspend(first, None, self._stopping)
        elif self._pending_replays:
            self._pending_replays -= 1
        return use, prior

    async def _confirm_lease(self) -> None:
        """Before a handler starts: if the lease has run out by our clock (a pause: GC,
        SIGSTOP), another worker may have run this step already, and this worker's
        writes would be refused anyway; running it would run it once more. The lease is
        renewed first if it can be (a busy event loop only ran late); else, stop."""
        if self._lease_held is None or self._lease_held():
            return
        if self._renew_lease is not None and await self._renew_lease():
            return
        log.warning("run %s: its lease ran out (was the worker paused?); stopping", self.run_id)
        self.stop("the lease ran out before a step could start")
        raise _Abandon(self._abandoned or "lease lost")

    def _start_handler(self, handler: Callable[..., Any], *args: Any) -> Any:
        # checked again at the last moment, in the handler's thread: a pause just after
        # _confirm_lease would otherwise go unseen
        if self._lease_held is not None and not self._lease_held():
            self.stop("the lease ran out before a step could start")
            raise _Abandon(self._abandoned or "lease lost")
        return handler(*args)

    def _done(self, value: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        future.set_result(value)
        return future

    def _failed(self, exc: BaseException) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        future.set_exception(exc)
        return future

    def _start(self, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def _emit(self, op: ops.Checkpoint) -> Any:
        try:
            return await self._emit_op(op)
        except LeaseLostError as exc:
            log.warning("run %s: lease lost, write refused: %s", self._data.run_id, exc)
            self.stop(f"lease lost: {exc}")
            raise _Abandon(str(exc)) from None
        except Exception as exc:
            log.exception("could not save a checkpoint of run %s", self._data.run_id)
            self.stop(f"storage error: {exc}")
            raise _Abandon(f"storage error: {exc}") from None

    # -- step.run ----------------------------------------------------------------------
    def run_step(
        self, step_id: str, handler: Callable[..., Any], args: tuple[Any, ...], output_type: Any
    ) -> asyncio.Future[Any]:
        use, prior = self._begin(step_id)
        if prior is not None and prior.status is StepStatus.COMPLETED:
            try:
                return self._done(convert(prior.output, output_type))
            except Exception as exc:
                return self._failed(exc)
        if prior is not None and prior.status is StepStatus.FAILED:
            return self._failed(StepError(use.id, prior.error or {}))
        now = self._clock.now()
        if prior is not None and prior.wake_at is not None and prior.wake_at > now:
            # another part of the run woke it before this step's retry is due
            return self._failed(
                self._suspend(ops.SuspendKind.RETRY, prior.wake_at, f"step {use.label!r} retrying")
            )
        attempt = prior.attempts if prior is not None else 0
        return self._start(self._execute_step(use, handler, args, output_type, attempt))

    async def _execute_step(
        self,
        use: _StepUse,
        handler: Callable[..., Any],
        args: tuple[Any, ...],
        output_type: Any,
        attempt: int,
    ) -> Any:
        started = self._clock.now()
        token = running_step.set(RunningStep(self.run_id, use.label, use.hashed, attempt))
        span = tracing.step_attempt(self._fn.id, self.run_id, use.id, use.hashed, attempt)
        try:
            await self._confirm_lease()
            if inspect.iscoroutinefunction(handler):
                value = await self._start_handler(handler, *args)
            else:
                context = contextvars.copy_context()
                value = await self._loop.run_in_executor(
                    self._pool, functools.partial(context.run, self._start_handler, handler, *args)
                )
                if inspect.isawaitable(value):
                    value = await value
            misuse = self._misuses.get(use.hashed)
            if misuse is not None:
                raise misuse
            output_json = dumps(value, what=f"the output of step {use.label!r}")
            size = size_of(output_json)
            if size > self._limits.max_step_output:
                raise LimitExceededError(
                    f"the output of step {use.label!r} is {size} bytes, over the limit of "
                    f"{self._limits.max_step_output}; save large data elsewhere and return a "
                    "reference to it"
                )
            if self._state_bytes() + size > self._limits.max_run_state:
                raise LimitExceededError(
                    f"step {use.label!r} would take the run's saved state past "
                    f"{self._limits.max_run_state} bytes"
                )
        except (_Suspend, _Abandon):
            raise
        except Exception as exc:
            # a misuse that the handler turned into another error is still what failed it
            failure: Exception = self._misuses.get(use.hashed, exc)
            return await self._step_failed(use, failure, attempt, started)
        finally:
            running_step.reset(token)
            span.end()
        record = StepRecord(
            id=use.id,
            occurrence=use.occurrence,
            hashed_id=use.hashed,
            status=StepStatus.COMPLETED,
            attempts=attempt + 1,
            started_at=started,
            ended_at=self._clock.now(),
        )
        alone = len(self._tasks) <= 1  # this step's own task, nothing in parallel
        await self._emit(ops.SaveStep(record, output_json=output_json, alone=alone))
        self._state_size = self._state_bytes() + size
        return convert(json.loads(output_json), output_type)

    async def _step_failed(
        self, use: _StepUse, exc: Exception, attempt: int, started: float
    ) -> Any:
        error = describe_error(exc)
        now = self._clock.now()
        decision = decide_retry(
            exc,
            attempt=attempt,
            max_attempts=self._fn.max_attempts,
            now=now,
            backoff=self._backoff,
            retry_after_min=self._retry_after_min,
        )
        status = StepStatus.RETRYING if decision.retry else StepStatus.FAILED
        record = StepRecord(
            id=use.id,
            occurrence=use.occurrence,
            hashed_id=use.hashed,
            status=status,
            attempts=attempt + 1,
            error=error,
            started_at=started,
            ended_at=now,
            wake_at=decision.at,
        )
        await self._emit(ops.SaveStep(record, error=error))
        if decision.retry:
            raise self._suspend(ops.SuspendKind.RETRY, decision.at, f"step {use.label!r} retrying")
        raise StepError(use.id, error)

    # -- sleeps, waits, invokes, sends -------------------------------------------------------
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

    def _finished(self, task: asyncio.Future[Any]) -> None:
        # a finished step needs no draining; its exception, if any, was (or will be)
        # seen by the function that awaited it
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()
