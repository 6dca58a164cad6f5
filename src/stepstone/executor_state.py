"""What one invocation of a function keeps, and the bookkeeping every step tool goes
through: the step id's hashing and its saved record (`_begin`), the limits, the
interrupts that stop the function, the futures a step tool returns, and `_emit`, which
hands a checkpoint op to the engine.

`executor.Invocation` builds on it; so do the step tools of `executor_tools`."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import ops
from .clock import Clock
from .errors import InvalidStepIdError, LeaseLostError, LimitExceededError, NestedStepError
from .function import FunctionDef
from .ids import MAX_STEP_ID, StepIdCounter
from .jsontext import compact
from .limits import Limits
from .records import Event, HistoryEntry, StepRecord, StepStatus, step_label
from .retry import Backoff
from .serde import size_of
from .step import running_step
from .stepcall import StepCall

log = logging.getLogger("stepstone.executor")

Emit = Callable[[ops.Checkpoint], Awaitable[Any]]


class _Suspend(BaseException):
    """Stops the function: the run must wait. A BaseException so `except Exception` passes it."""


class _Abandon(BaseException):
    """Stops the function: write nothing more (lease lost, run cancelled, storage down)."""


class _StepUse(NamedTuple):
    """One use of a step id in this invocation: the id, which use it is, its hashed id
    (a tuple, since every step makes one)."""

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


class InvocationState:
    """One call of a function: its saved steps, the steps it has begun, what stops it."""

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
        self.run_id = data.run_id
        self._saved = {s.hashed_id: s for s in data.steps}
        self._ids = StepIdCounter()
        # the steps begun and not over (a finished one leaves at once: nothing to drain)
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
        self._begin_lock = threading.Lock()
        self._next_turn = 0.0  # the loop's time by which a step lets the loop run
        self._logs: list[HistoryEntry] = []
        self._logs_taken = 0
        # step tools called inside a step's handler, by that step's hashed id: kept here, so
        # that the step and the run fail even when the handler catches the exception
        self._misuses: dict[str, NestedStepError] = {}

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
            self._state_size = sum(size_of(compact(e.to_dict())) for e in data.events) + sum(
                size_of(compact(s.output)) for s in data.steps if s.output is not None
            )
        return self._state_size

    @property
    def replaying(self) -> bool:
        """True while the function is still going over steps it had already finished."""
        return self._pending_replays > 0

    def stop(self, reason: str) -> None:
        """No new step may start; steps already running finish and are saved."""
        self._stopping = self._stopping or reason
        self._abandoned = self._abandoned or reason

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
        # a `def` function's step.run begins on the function's thread (executor_run),
        # where the user's own threads may call it too; the loop's tools begin on the loop
        with self._begin_lock:
            return self._begin_unlocked(step_id)

    def _begin_unlocked(self, step_id: str) -> tuple[_StepUse, StepRecord | None]:
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

    def _done(self, value: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        future.set_result(value)
        return future

    def _failed(self, exc: BaseException) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        future.set_exception(exc)
        return future

    def _start(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        call = StepCall(self._loop, coro, self._tasks.discard)
        self._tasks.add(call)
        return call

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
