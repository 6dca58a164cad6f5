"""step.run: a handler run as a retriable step, its output checkpointed before the
function sees it.

Two paths. On the event loop (an `async def` function, or an `async def` handler of a
`def` one), the step is a coroutine the function awaits; a `def` handler then runs on the
step pool. For a `def` function with a `def` handler, `run_step_here` runs the step on the
function's own thread, and only its checkpoint goes to the event loop: one round trip
between threads a step, where the loop and the step pool took three.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from types import FunctionType
from typing import Any

from . import ops, tracing
from .errors import LimitExceededError, StepError, describe_error
from .executor_state import _Abandon, _StepUse, _Suspend
from .executor_tools import StepTools
from .records import StepRecord, StepStatus
from .retry import decide_retry
from .serde import PLAIN_SCALARS, convert, dumps, size_of
from .step import RunningStep, running_step

log = logging.getLogger("stepstone.executor")

TURN_EVERY = 0.002  # seconds: see the end of _execute_step
CO_COROUTINE = inspect.CO_COROUTINE


def is_async(handler: Callable[..., Any]) -> bool:
    """Whether `handler` is an `async def` (the quick test first: inspect's takes a dozen
    calls, and every step asks)."""
    return (
        type(handler) is FunctionType and bool(handler.__code__.co_flags & CO_COROUTINE)
    ) or inspect.iscoroutinefunction(handler)


class StepRunner(StepTools):
    """An invocation's step.run (`executor.Invocation` adds the call of the function)."""

    def run_step(
        self, step_id: str, handler: Callable[..., Any], args: tuple[Any, ...], output_type: Any
    ) -> asyncio.Future[Any]:
        use, prior = self._begin(step_id)
        try:
            replayed, found = self._replay(use, prior, output_type)
        except (Exception, _Suspend) as exc:
            return self._failed(exc)
        if replayed:
            return self._done(found)
        return self._start(self._execute_step(use, handler, args, output_type, found))

    def _replay(
        self, use: _StepUse, prior: StepRecord | None, output_type: Any
    ) -> tuple[bool, Any]:
        """What a saved state makes of this use: (True, its value); its error or _Suspend
        (a retry not due yet) raised; else (False, the attempt to run)."""
        if prior is None:
            return False, 0
        if prior.status is StepStatus.COMPLETED:
            return True, convert(prior.output, output_type)
        if prior.status is StepStatus.FAILED:
            raise StepError(use.id, prior.error or {})
        if prior.wake_at is not None and prior.wake_at > self._clock.now():
            # another part of the run woke it before this step's retry is due
            raise self._suspend(
                ops.SuspendKind.RETRY, prior.wake_at, f"step {use.label!r} retrying"
            )
        return False, prior.attempts

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
            if self._lease_held is not None and not self._lease_held():
                await self._renew_or_stop()
            if is_async(handler):
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
            output_json, size = self._checked_output(use, value)
        except (_Suspend, _Abandon):
            raise
        except Exception as exc:
            # a misuse that the handler turned into another error is still what failed it;
            # passed on, not kept in a local: this frame is in the error's traceback, and
            # a local holding the error would make a cycle of them
            return await self._step_failed(
                use, self._misuses.get(use.hashed, exc), attempt, started
            )
        finally:
            running_step.reset(token)
            span.end()
        alone = len(self._tasks) <= 1  # this step's own task, nothing in parallel
        await self._save_output(use, output_json, size, attempt, started, alone)
        loop = self._loop
        if loop.time() >= self._next_turn:
            # a step that committed inline never yielded: let the loop run (leases,
            # claims, requests) every TURN_EVERY seconds of such steps
            await asyncio.sleep(0)
            self._next_turn = loop.time() + TURN_EVERY
        return _handed_back(value, output_json, output_type)

    def run_step_here(
        self, step_id: str, handler: Callable[..., Any], args: tuple[Any, ...], output_type: Any
    ) -> Any:
        """step.run of a `def` function with a `def` handler, called on the function's
        thread: as `_execute_step`, with the handler called here, and the checkpoint (or a
        failure's) done on the event loop while this thread waits."""
        loop = self._loop
        if is_async(handler):  # its place is the loop
            return _on_loop(self._awaited_step(step_id, handler, args, output_type), loop)
        use, prior = self._begin(step_id)
        replayed, found = self._replay(use, prior, output_type)
        if replayed:
            return found
        attempt: int = found
        started = self._clock.now()
        token = running_step.set(RunningStep(self.run_id, use.label, use.hashed, attempt))
        span = tracing.step_attempt(self._fn.id, self.run_id, use.id, use.hashed, attempt)
        try:
            if self._lease_held is not None and not self._lease_held():
                _on_loop(self._renew_or_stop(), loop)
            value = self._start_handler(handler, *args)
            if inspect.isawaitable(value):
                value = _on_loop(value, loop)
            output_json, size = self._checked_output(use, value)
        except (_Suspend, _Abandon):
            raise
        except Exception as exc:
            failed = self._step_failed(use, self._misuses.get(use.hashed, exc), attempt, started)
            return _on_loop(failed, loop)
        finally:
            running_step.reset(token)
            span.end()
        _on_loop(self._save_output(use, output_json, size, attempt, started, not self._tasks), loop)
        return _handed_back(value, output_json, output_type)

    async def _awaited_step(
        self, step_id: str, handler: Callable[..., Any], args: tuple[Any, ...], output_type: Any
    ) -> Any:
        return await self.run_step(step_id, handler, args, output_type)

    def _checked_output(self, use: _StepUse, value: Any) -> tuple[str, int]:
        """A handler's value as saved: its JSON and its size, within the limits; raises
        the misuse of a step tool in the handler, if any."""
        if self._misuses:
            misuse = self._misuses.get(use.hashed)
            if misuse is not None:
                raise misuse
        label = use.label
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
        return output_json, size

    async def _save_output(
        self, use: _StepUse, output_json: str, size: int, attempt: int, started: float, alone: bool
    ) -> None:
        record = StepRecord(
            id=use.id,
            occurrence=use.occurrence,
            hashed_id=use.hashed,
            status=StepStatus.COMPLETED,
            attempts=attempt + 1,
            started_at=started,
            ended_at=self._clock.now(),
        )
        await self._emit(ops.SaveStep(record, output_json=output_json, alone=alone))
        self._state_size = self._state_bytes() + size

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


def _handed_back(value: Any, output_json: str, output_type: Any) -> Any:
    """What the function gets: the value as JSON gives it back, as a replay would."""
    if type(value) in PLAIN_SCALARS:
        return convert(value, output_type)  # what JSON would give back
    return convert(json.loads(output_json), output_type)


def _on_loop(coro: Awaitable[Any], loop: asyncio.AbstractEventLoop) -> Any:
    """Runs `coro` on the event loop from another thread, and waits for its outcome."""
    return asyncio.run_coroutine_threadsafe(_awaited(coro), loop).result()


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value
