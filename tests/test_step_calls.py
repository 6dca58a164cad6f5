"""The future a step tool returns (`stepcall.StepCall`): awaited at once, the step runs in
the awaiting task; otherwise it starts as a task on the loop's next turn. And a run of
steps that never yield still lets the event loop run."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from typing import Any

import pytest

import stepstone
from stepstone.stepcall import StepCall

from .helpers import make_app


class _Ended:
    def __init__(self) -> None:
        self.calls: list[StepCall[Any]] = []

    def __call__(self, call: StepCall[Any]) -> None:
        self.calls.append(call)


async def test_awaited_at_once_it_runs_in_the_awaiting_task() -> None:
    ended, ran_in = _Ended(), []

    async def step() -> int:
        ran_in.append(asyncio.current_task())
        await asyncio.sleep(0)  # a step that yields still runs where it began
        ran_in.append(asyncio.current_task())
        return 7

    call = StepCall(asyncio.get_running_loop(), step(), ended)
    assert await call == 7
    assert ran_in == [asyncio.current_task()] * 2
    assert call.result() == 7 and ended.calls == [call]
    assert await call == 7  # awaited again: the result, not a second run


async def test_not_awaited_before_a_yield_it_starts_as_a_task() -> None:
    ended, ran_in = _Ended(), []

    async def step() -> str:
        ran_in.append(asyncio.current_task())
        return "done"

    call = StepCall(asyncio.get_running_loop(), step(), ended)
    assert ran_in == []
    await asyncio.sleep(0)  # the loop's next turn starts it
    await asyncio.sleep(0)
    assert len(ran_in) == 1 and ran_in[0] is not asyncio.current_task()
    assert await call == "done" and ended.calls == [call]


async def test_steps_created_together_run_side_by_side() -> None:
    ended, log = _Ended(), []
    loop = asyncio.get_running_loop()

    async def step(name: str) -> str:
        log.append(f"{name} began")
        await asyncio.sleep(0.05)
        log.append(f"{name} ended")
        return name

    a, b = StepCall(loop, step("a"), ended), StepCall(loop, step("b"), ended)
    began = time.monotonic()
    assert [await a, await b] == ["a", "b"]
    assert time.monotonic() - began < 0.09  # 0.1 one after the other
    assert log[:2] == ["a began", "b began"]
    assert await asyncio.gather(StepCall(loop, step("c"), ended)) == ["c"]
    assert len(ended.calls) == 3


async def test_a_call_cancelled_before_it_starts_never_runs() -> None:
    ended, ran = _Ended(), []

    async def step() -> None:
        ran.append(True)

    call = StepCall(asyncio.get_running_loop(), step(), ended)
    assert call.cancel()
    await asyncio.sleep(0.01)
    assert call.cancelled() and ran == [] and ended.calls == [call]
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_call_cancelled_while_running_as_a_task_stops_it() -> None:
    ended, stopped = _Ended(), []

    async def step() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            stopped.append(True)
            raise

    call = StepCall(asyncio.get_running_loop(), step(), ended)
    await asyncio.sleep(0.01)  # started as a task
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert call.cancelled() and stopped == [True] and ended.calls == [call]


async def test_errors_reach_the_awaiter_and_are_never_logged_as_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ended = _Ended()
    loop = asyncio.get_running_loop()

    async def failing() -> None:
        raise ValueError("no")

    inline = StepCall(loop, failing(), ended)
    with pytest.raises(ValueError, match="no"):
        await inline
    assert isinstance(inline.exception(), ValueError)
    assert ended.calls == [inline]
    ended_unawaited: list[bool] = []  # no reference kept: the call must be collected
    StepCall(loop, failing(), lambda _call: ended_unawaited.append(True))  # never awaited
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        await asyncio.sleep(0.01)  # it fails as a task; nobody looks
        gc.collect()
    assert ended_unawaited == [True]
    assert "never retrieved" not in caplog.text


async def test_a_run_of_inline_steps_lets_the_event_loop_run(sqlite_url: str) -> None:
    """Steps that commit inline never yield; a long run of them still gives the loop a
    turn every few milliseconds (TURN_EVERY), so its other tasks are not starved."""
    app = make_app(sqlite_url, limits=stepstone.Limits(max_steps=2000))
    span: dict[str, float] = {}

    async def noop(i: int) -> int:
        return i

    @app.function(id="many", trigger="t/many")
    async def many(ctx: stepstone.Context) -> int:
        span["began"] = time.monotonic()
        for i in range(1500):
            await ctx.step.run(f"s{i}", noop, i)
        span["ended"] = time.monotonic()
        return 1500

    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0)

    try:
        async with app.worker():
            [event_id] = await app.send({"name": "t/many"})
            [run] = await app.runs_for_event(event_id)
            beat = asyncio.create_task(ticker())
            done = await app.wait_for_run(run.id, timeout=120)
            beat.cancel()
        assert done.output == 1500
    finally:
        await app.close()
    during = [t for t in ticks if span["began"] <= t <= span["ended"]]
    assert span["ended"] - span["began"] > 0.2  # long enough for a starved loop to show
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) > 20 and max(gaps) < 0.1, (len(during), max(gaps, default=None))
