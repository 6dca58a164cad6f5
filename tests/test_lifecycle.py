"""The run lifecycle: cancel, cancel_on, timeouts, on_failure, internal events, rerun, cron."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import stepstone
from stepstone.testing import TestClock, run_function
from tests.helpers import make_app, send_and_wait
from tests.test_waits import _run_of, _until_status


async def test_cancel_sleeping_run(database_url: str) -> None:
    app = make_app(database_url)
    finished: list[str] = []

    @app.function(id="sleeper", trigger="sleep/go")
    async def sleeper(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("long", 3600)
        await ctx.step.run("never", lambda: finished.append("ran"))

    @app.function(id="on-cancel", trigger="stepstone/function.cancelled")
    async def on_cancel(ctx: stepstone.Context) -> Any:
        return ctx.event.data["run_id"]

    async with app.worker():
        run_id = await _run_of(app, {"name": "sleep/go"})
        await _until_status(app, run_id, "sleeping")
        assert await app.cancel(run_id) is True
        run = await app.wait_for_run(run_id)
        assert await app.cancel(run_id) is False  # already ended
        [announce] = await app.runs_for_event(f"{run_id}:cancelled")
        notified = await app.wait_for_run(announce.id)
    await app.close()
    assert run.status == "cancelled"
    assert finished == []
    assert notified.output == run_id


async def test_cancel_running_run_lets_the_running_step_finish(database_url: str) -> None:
    app = make_app(database_url)
    started = asyncio.Event()
    log: list[str] = []

    @app.function(id="busy", trigger="busy/go")
    async def busy(ctx: stepstone.Context) -> Any:
        async def slow() -> str:
            started.set()
            await asyncio.sleep(0.5)
            log.append("slow done")
            return "slow"

        await ctx.step.run("slow", slow)
        await ctx.step.run("next", lambda: log.append("next"))

    async with app.worker():
        run_id = await _run_of(app, {"name": "busy/go"})
        await asyncio.wait_for(started.wait(), 10)
        assert await app.cancel(run_id)
        run = await app.wait_for_run(run_id)
    await app.close()
    assert run.status == "cancelled"
    assert log == ["slow done"]
    assert run.step("slow").output == "slow"  # saved although the run was cancelled
    assert [s.id for s in run.steps] == ["slow"]


async def test_cancel_on_event_matching_the_trigger(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(
        id="reminder",
        trigger="reminder/created",
        cancel_on=[stepstone.Cancel("reminder/deleted", if_="event.data.id == async.data.id")],
    )
    async def reminder(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("until-due", 3600)
        return "reminded"

    async with app.worker():
        one = await _run_of(app, {"name": "reminder/created", "data": {"id": 1}})
        two = await _run_of(app, {"name": "reminder/created", "data": {"id": 2}})
        await _until_status(app, one, "sleeping")
        await _until_status(app, two, "sleeping")
        await app.send({"name": "reminder/deleted", "data": {"id": 1}})
        run = await app.wait_for_run(one)
        other = await app.get_run(two)
    await app.close()
    assert run.status == "cancelled"
    assert other is not None and other.status == "sleeping"


async def test_timeouts_finish_cancels_a_long_run(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="bounded", trigger="bounded/go", timeouts={"finish": 0.5})
    async def bounded(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("too-long", 60)
        return "finished"

    async with app.worker():
        start = time.monotonic()
        run = await send_and_wait(app, "bounded/go")
    await app.close()
    assert run.status == "cancelled"
    assert run.error is not None and run.error["name"] == "FunctionTimeout"
    assert time.monotonic() - start < 10


async def test_timeouts_start_cancels_a_run_that_waited_too_long(database_url: str) -> None:
    app = make_app(database_url)
    ran: list[int] = []

    @app.function(id="fresh-only", trigger="fresh/go", timeouts=stepstone.Timeouts(start=0.2))
    async def fresh_only(ctx: stepstone.Context) -> Any:
        ran.append(1)

    run_id = await _run_of(app, {"name": "fresh/go"})
    await asyncio.sleep(0.4)  # no worker yet: the run waits in the queue past its limit
    async with app.worker():
        run = await app.wait_for_run(run_id)
    await app.close()
    assert run.status == "cancelled" and ran == []


async def test_on_failure_handler_and_finished_event(database_url: str) -> None:
    app = make_app(database_url)

    async def cleanup(ctx: stepstone.Context) -> Any:
        return {
            "failed": ctx.event.data["function_id"],
            "error": ctx.event.data["error"]["message"],
            "original": ctx.event.data["event"]["data"],
        }

    @app.function(id="fragile", trigger="fragile/go", retries=0, on_failure=cleanup)
    async def fragile(ctx: stepstone.Context) -> Any:
        raise RuntimeError("broken")

    finished: list[dict[str, Any]] = []

    @app.function(id="audit", trigger="stepstone/function.finished")
    async def audit(ctx: stepstone.Context) -> Any:
        finished.append(ctx.event.data)

    async with app.worker():
        run = await send_and_wait(app, "fragile/go", {"x": 1})
        [handler_run] = [
            r
            for r in await app.runs_for_event(f"{run.id}:failed")
            if r.function_id == "fragile-failure"
        ]
        handled = await app.wait_for_run(handler_run.id)
        [audit_run] = await app.runs_for_event(f"{run.id}:finished")
        await app.wait_for_run(audit_run.id)
    await app.close()
    assert run.status == "failed"
    assert handled.output == {"failed": "fragile", "error": "broken", "original": {"x": 1}}
    assert any(f["run_id"] == run.id and f["status"] == "failed" for f in finished)


async def test_output_too_large_to_announce_still_ends_the_run(database_url: str) -> None:
    """The function.finished event leaves out an output over the event size limit; the
    run itself keeps it whole and ends (before, the oversized announcement failed the
    run's end, and the run was retried without end)."""
    app = make_app(database_url, limits=stepstone.Limits(max_event_size=4096))
    big = "x" * 10_000

    @app.function(id="big", trigger="big/go")
    async def produce(ctx: stepstone.Context) -> Any:
        return big

    async with app.worker():
        run = await send_and_wait(app, "big/go")
        announced = await app.get_event(f"{run.id}:finished")
    await app.close()
    assert run.status == "completed" and run.output == big
    assert announced is not None
    assert announced.event.data["output"] is None
    assert announced.event.data["output_omitted"].startswith("10002 bytes")
    assert announced.event.data["status"] == "completed"


async def test_rerun_and_rerun_from_step(database_url: str) -> None:
    app = make_app(database_url)
    calls: dict[str, int] = {"a": 0, "b": 0, "c": 0}

    @app.function(id="abc", trigger="abc/go")
    async def abc(ctx: stepstone.Context) -> Any:
        out = []
        for name in ("a", "b", "c"):

            def bump(name: str = name) -> int:
                calls[name] += 1
                return calls[name]

            out.append(await ctx.step.run(name, bump))
        return out

    async with app.worker():
        first = await send_and_wait(app, "abc/go")
        again = await app.wait_for_run(await app.rerun(first.id))
        partial = await app.wait_for_run(await app.rerun(first.id, from_step="b"))
    await app.close()
    assert first.output == [1, 1, 1]
    assert again.output == [2, 2, 2] and again.event_ids == first.event_ids
    assert partial.output == [1, 3, 3]  # "a" kept from the first run, "b" and "c" run again
    assert calls == {"a": 2, "b": 3, "c": 3}


async def test_cron_makes_one_run_per_tick_however_many_workers(sqlite_url: str) -> None:
    clock = TestClock(datetime(2026, 1, 1, 11, 59, 59, tzinfo=UTC).timestamp())
    app = make_app(sqlite_url, clock=clock)

    @app.function(id="hourly", trigger=stepstone.on_cron("0 * * * *"))
    async def hourly(ctx: stepstone.Context) -> Any:
        return ctx.event.data["tick"]

    async with app.worker(), app.worker():  # two workers compute the same ticks
        await asyncio.sleep(0.1)
        clock.advance(2)  # 12:00:01
        deadline = time.monotonic() + 10
        while True:
            page = await app.list_runs(function_id="hourly")
            if page and all(r.status == "completed" for r in page):
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        page = await app.list_runs(function_id="hourly")
    await app.close()
    assert len(page) == 1
    assert page[0].output == datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp()


async def test_run_function_jumps_over_a_week_of_sleep_with_stubbed_steps() -> None:
    app = stepstone.App("unit", database="memory://")
    charged: list[int] = []

    @app.function(id="trial", trigger="trial/started")
    async def trial(ctx: stepstone.Context) -> Any:
        user = await ctx.step.run("load-user", lambda: {"plan": "real lookup"})
        await ctx.step.sleep("trial-period", "7d")
        await ctx.step.run("charge", lambda: charged.append(1))
        return user

    clock = TestClock()
    before = clock.now()
    start = time.monotonic()
    run = await run_function(
        app, "trial", {"name": "trial/started"}, steps={"load-user": {"plan": "stub"}}, clock=clock
    )
    assert run.status == "completed" and run.output == {"plan": "stub"}
    assert charged == [1]
    assert clock.now() - before >= 7 * 86400
    assert time.monotonic() - start < 5
