"""Helpers for testing your own functions: a clock you move, and a one-call runner.

    clock = TestClock()
    app = stepstone.App("shop", database="memory://", clock=clock)
    ...
    clock.advance(7 * 86400)   # a 7-day step.sleep is now due

`run_function` runs one function for one event in memory, with steps you stub by id,
jumping the clock over every sleep, wait timeout and retry backoff, so a test of a
function that sleeps for a week takes milliseconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from .app import App
from .clock import Clock
from .errors import ConfigError
from .function import FunctionDef
from .ids import hash_step_id
from .records import Event, Run, RunStatus, StepRecord, StepStatus
from .step import Context
from .store import NewEvent

__all__ = ["TestClock", "run_function"]


class TestClock(Clock):
    """A clock that moves only when told to (`advance`, `set`)."""

    __test__ = False  # not a pytest test class

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._listeners: list[Callable[[], None]] = []
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the clock moves (apps wake their workers)."""
        self._listeners.append(listener)

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    def set(self, when: float) -> None:
        if when < self._now:
            raise ValueError("the clock does not go backwards")
        self._now = when
        due = [s for s in self._sleepers if s[0] <= when]
        self._sleepers = [s for s in self._sleepers if s[0] > when]
        for _, future in due:
            if not future.done():
                future.get_loop().call_soon_threadsafe(_finish, future)
        for listener in list(self._listeners):
            listener()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + seconds, future))
        await future


class _StepIds:
    """Wraps a function's `ctx.step`: notes each step id it asks for (the n-th repeat of
    an id as `id:n`, as stubs name it), then does what the real one does."""

    def __init__(self, step: Any, called: list[str]) -> None:
        self._step = step
        self._called = called
        self._counts: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        tool = getattr(self._step, name)
        if not callable(tool):
            return tool

        def noted(step_id: str, *args: Any, **kwargs: Any) -> Any:
            count = self._counts.get(step_id, 0)
            self._counts[step_id] = count + 1
            self._called.append(step_id if count == 0 else f"{step_id}:{count}")
            return tool(step_id, *args, **kwargs)

        return noted


def _recording(fn: FunctionDef, called: list[str]) -> FunctionDef:
    """`fn`, its handler given a ctx whose step tools note the ids they are called with."""
    handler = fn.handler

    def with_ids(ctx: Context) -> Context:
        return dataclasses.replace(ctx, step=_StepIds(ctx.step, called))

    if fn.is_async:

        async def recorded(ctx: Context) -> Any:
            return await handler(with_ids(ctx))

    else:

        def recorded(ctx: Context) -> Any:  # type: ignore[misc]
            return handler(with_ids(ctx))

    return dataclasses.replace(fn, handler=recorded)


def _check_stubs(fn_id: str, steps: Mapping[str, Any], called: list[str], run: Run) -> None:
    """A stub for a step id the function never asked for is a typo, or a stale test."""
    unused = [step_id for step_id in steps if step_id not in called]
    if not unused:
        return
    names = ", ".join(repr(s) for s in unused)
    real = ", ".join(repr(s) for s in dict.fromkeys(called)) or "none"
    ended = f"the run ended {run.status.value}"
    if run.error:
        ended += f" with {run.error.get('name')}: {run.error.get('message')}"
    raise ConfigError(
        f"run_function: function {fn_id!r} never called the stubbed step(s) {names}; "
        f"the steps it called: {real} ({ended})"
    )


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def run_function(
    app: App,
    function: FunctionDef | str,
    event: Event | Mapping[str, Any],
    *,
    steps: Mapping[str, Any] | None = None,
    clock: TestClock | None = None,
    timeout: float = 30.0,
) -> Run:
    """Run `function` of `app` for `event` in a private in-memory database and return the run.

    `steps` maps step ids to the values they return without running their handlers (a
    `wait_for_event` stub is the event dict, or None for a timeout). The clock jumps
    forward whenever the run is only waiting for time to pass.
    """
    clock = clock or TestClock()
    sandbox = App(
        app.id,
        database="memory://",
        backoff=app.backoff,
        limits=app.limits,
        clock=clock,
        retry_after_min=app.retry_after_min,
    )
    sandbox.functions = dict(app.functions)
    fn_id = function.id if isinstance(function, FunctionDef) else function
    planner = sandbox.runtime.planner
    fn = sandbox.runtime.registry.get(fn_id)
    called: list[str] = []  # the step ids the function asks for, in order, with repeats
    if steps:
        sandbox.functions[fn_id] = fn = _recording(fn, called)
    try:
        store = await sandbox.store()
        prepared = planner.events(event)[0]
        run = planner.new_run(fn, prepared.event, clock.now())
        stubbed = [
            (
                run.id,
                StepRecord(
                    id=step_id,
                    hashed_id=hash_step_id(step_id),
                    status=StepStatus.COMPLETED,
                    attempts=1,
                    output=value.to_dict() if isinstance(value, Event) else value,
                    started_at=clock.now(),
                    ended_at=clock.now(),
                ),
            )
            for step_id, value in (steps or {}).items()
        ]
        await store.ingest([NewEvent(prepared.event, prepared.data_json, clock.now())])
        await store.create_runs([run], stubbed)
        async with sandbox.worker(poll_interval=0.01, crons=False) as worker:
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                current = await store.get_run(run.id, with_history=True)
                assert current is not None
                if current.status.is_final:
                    _check_stubs(fn_id, steps or {}, called, current)
                    return current
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"run {run.id} still {current.status} after {timeout}s")
                idle = current.status in (RunStatus.SLEEPING, RunStatus.WAITING) or (
                    current.status is RunStatus.RUNNING and not worker.busy
                )
                due = await store.next_due()
                if idle and not worker.busy and due is not None and due > clock.now():
                    clock.set(due)
                await asyncio.sleep(0.005)
    finally:
        await sandbox.close()
