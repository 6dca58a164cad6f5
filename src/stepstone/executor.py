"""Runs one invocation of a function against its saved steps and emits ops.

The executor knows nothing of storage: it is handed the run's saved steps and an
`emit` coroutine that persists a checkpoint op, and it returns an outcome op.
Finished steps are checkpointed before their value is handed to the function, and
the function goes on in the same coroutine; replay happens only on a new invocation.

`Invocation` comes in four layers: `executor_state` (what an invocation keeps, and the
bookkeeping every step tool goes through), `executor_tools` (the step tools whose work
the engine does: sleeps, waits, invokes, sends), `executor_run` (step.run) and this
module (the call of the function, and the outcome op).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from typing import Any

from . import ops
from .errors import describe_error
from .executor_run import StepRunner
from .executor_state import InvocationInput, _Abandon, _Suspend
from .executor_tools import MAX_WAIT
from .retry import decide_retry
from .serde import dumps
from .step import Context, Step, SyncStep

__all__ = ["MAX_WAIT", "Invocation", "InvocationInput", "RunLogger"]

log = logging.getLogger("stepstone.executor")


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


class Invocation(StepRunner):
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
