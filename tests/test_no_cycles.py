"""A finished invocation's objects are freed by reference counting, not left to Python's
cyclic collector: with thousands of runs a second, garbage in cycles makes the collector
run full passes that stall the event loop for tens of milliseconds (late timers)."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Iterator

import pytest

import stepstone

from .helpers import make_app


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """What the cyclic collector finds unreachable from here on (it keeps it, to look)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def _ours(garbage: list[object]) -> Counter[str]:
    """The garbage made of stepstone's objects, by type; asyncio's and the frames of our
    coroutines count too (they are what a run's cycle would hold)."""
    found: Counter[str] = Counter()
    for item in garbage:
        kind = type(item)
        module = kind.__module__ or ""
        code = next(
            (getattr(item, a) for a in ("f_code", "cr_code", "__code__") if hasattr(item, a)),
            None,
        )
        if module.startswith("stepstone") or (code and "stepstone" in code.co_filename):
            found[f"{module}.{kind.__qualname__}"] += 1
        elif kind.__name__ in ("Task", "Future", "TimerHandle"):
            found[kind.__name__] += 1
    return found


async def test_runs_leave_no_reference_cycles(
    database_url: str, saved_garbage: list[object]
) -> None:
    app = make_app(database_url)
    attempts = {"flaky": 0}

    def flaky() -> str:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    @app.function(id="mixed", trigger="t/mixed", retries=2)
    async def mixed(ctx: stepstone.Context) -> list[str]:
        first = await ctx.step.run("first", lambda: "a")
        await ctx.step.sleep("nap", 0.05)
        both = await asyncio.gather(
            ctx.step.run("left", lambda: "l"), ctx.step.run("right", lambda: "r")
        )
        retried = await ctx.step.run("flaky", flaky)
        try:
            await ctx.step.run("fails", lambda: 1 / 0)
        except stepstone.StepError as error:  # a caught step error is a path of its own
            assert error.step_id == "fails"
        return [first, *both, retried]

    @app.function(id="plain", trigger="t/plain")
    def plain(ctx: stepstone.SyncContext) -> str:
        return ctx.step.run("here", lambda: "def")

    try:
        async with app.worker(poll_interval=0.05):
            for _ in range(3):  # the first run warms caches that live on
                attempts["flaky"] = 0
                [mixed_id] = await app.send({"name": "t/mixed"})
                [plain_id] = await app.send({"name": "t/plain"})
                for event_id in (mixed_id, plain_id):
                    [run] = await app.runs_for_event(event_id)
                    ended = await app.wait_for_run(run.id, timeout=20)
                    assert ended.status is stepstone.RunStatus.COMPLETED, ended
            await asyncio.sleep(0.1)  # the last invocation's task is over
            gc.collect()
            assert _ours(saved_garbage) == Counter()
    finally:
        await app.close()
