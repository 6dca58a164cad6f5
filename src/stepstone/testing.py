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
import time
from collections.abc import Callable, Mapping
from typing import Any

from .app import App
from .clock import Clock
from .function import FunctionDef
from .ids import hash_step_id
from .records import Event, Run, RunStatus, StepRecord, StepStatus
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
