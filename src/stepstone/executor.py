"""Runs one invocation of a function against its saved steps and emits ops.

The executor knows nothing of storage: it is handed the run's saved steps and an
`emit` coroutine that persists a checkpoint op, and it returns an outcome op.
Finished steps are checkpointed before their value is handed to the function, and
the function goes on in the same coroutine; replay happens only on a new invocation.

`Invocation` comes in three layers: `executor_state` (what an invocation keeps, and the
bookkeeping every step tool goes through), `executor_tools` (the step tools whose work
the engine does: sleeps, waits, invokes, sends) and this module (the call of the
function, step.run, and the outcome op).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
from collections.abc import Callable
from types import FunctionType
from typing import Any

from . import ops, tracing
from .errors import LimitExceededError, StepError, describe_error
from .executor_state import InvocationInput, _Abandon, _StepUse, _Suspend
from .executor_tools import MAX_WAIT, StepTools
from .records import StepRecord, StepStatus
from .retry import decide_retry
from .serde import PLAIN_SCALARS, convert, dumps, size_of
from .step import Context, RunningStep, Step, SyncStep, running_step

__all__ = ["MAX_WAIT", "Invocation", "InvocationInput", "RunLogger"]

log = logging.getLogger("stepstone.executor")

TURN_EVERY = 0.002  # seconds: see the end of _execute_step
CO_COROUTINE = inspect.CO_COROUTINE


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


class Invocation(StepTools):
    """One call of a function: replays saved steps, runs new ones, emits ops."""

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
        label = use.label
        token = running_step.set(RunningStep(self.run_id, label, use.hashed, attempt))
        span = tracing.step_attempt(self._fn.id, self.run_id, use.id, use.hashed, attempt)
        try:
            if self._lease_held is not None and not self._lease_held():
                await self._renew_or_stop()
            if (  # the quick test first: inspect's takes a dozen calls
                type(handler) is FunctionType and handler.__code__.co_flags & CO_COROUTINE
            ) or inspect.iscoroutinefunction(handler):
                # the lease was checked just above, with no await since: no pause can
                # come between that check and the handler's first line but the
                # process's own (see _start_handler for a handler on a thread)
                value = await handler(*args)
            else:
                context = contextvars.copy_context()
                value = await self._loop.run_in_executor(
                    self._pool, functools.partial(context.run, self._start_handler, handler, *args)
                )
                if inspect.isawaitable(value):
                    value = await value
            if self._misuses:
                misuse = self._misuses.get(use.hashed)
                if misuse is not None:
                    raise misuse
            output_json = dumps(value, what=f"the output of step {label!r}")
            size = size_of(output_json)
            if size > self._limits.max_step_output:
                raise LimitExceededError(
                    f"the output of step {label!r} is {size} bytes, over the limit of "
                    f"{self._limits.max_step_output}; save large data elsewhere and return a "
                    "reference to it"
                )
            if self._state_bytes() + size > self._limits.max_run_state:
                raise LimitExceededError(
                    f"step {label!r} would take the run's saved state past "
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
        loop = self._loop
        if loop.time() >= self._next_turn:
            # a step that committed inline never yielded: let the loop run (leases,
            # claims, requests) every TURN_EVERY seconds of such steps
            await asyncio.sleep(0)
            self._next_turn = loop.time() + TURN_EVERY
        if type(value) in PLAIN_SCALARS:
            return convert(value, output_type)  # what JSON would give back
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

    async def _renew_or_stop(self) -> None:
        """Before a handler starts, its lease had run out by our clock (a pause: GC,
        SIGSTOP): another worker may have run this step already, and this worker's writes
        would be refused anyway; running it would run it once more. The lease is renewed
        if it can be (a busy event loop only ran late); else, stop."""
        if self._renew_lease is not None and await self._renew_lease():
            return
        log.warning("run %s: its lease ran out (was the worker paused?); stopping", self.run_id)
        self.stop("the lease ran out before a step could start")
        raise _Abandon(self._abandoned or "lease lost")

    def _start_handler(self, handler: Callable[..., Any], *args: Any) -> Any:
        # a handler on a thread: checked again at the last moment, in that thread, since
        # a pause between the check in _execute_step and this line would go unseen
        if self._lease_held is not None and not self._lease_held():
            self.stop("the lease ran out before a step could start")
            raise _Abandon(self._abandoned or "lease lost")
        return handler(*args)
