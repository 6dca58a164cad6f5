"""Durable sleeps, waits for events, invokes and sends, through the public API."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import stepstone
from tests.helpers import make_app, send_and_wait


async def _run_of(app: stepstone.App, event: dict[str, Any]) -> str:
    [event_id] = await app.send(event)
    [run] = await app.runs_for_event(event_id)
    return run.id


async def _until_status(app: stepstone.App, run_id: str, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        run = await app.get_run(run_id)
        assert run is not None
        if run.status == status:
            return
        assert time.monotonic() < deadline, f"run is {run.status}, not {status}"
        await asyncio.sleep(0.01)


async def test_sleep_is_durable_and_frees_the_worker(database_url: str) -> None:
    app = make_app(database_url)
    calls = {"before": 0, "after": 0}

    @app.function(id="nap", trigger="nap/go")
    async def nap(ctx: stepstone.Context) -> Any:
        await ctx.step.run("before", lambda: calls.__setitem__("before", calls["before"] + 1))
        await ctx.step.sleep("nap", 0.4)
        await ctx.step.sleep_until("until", time.time() - 1)  # already past: returns at once
        await ctx.step.run("after", lambda: calls.__setitem__("after", calls["after"] + 1))
        return "rested"

    async with app.worker() as worker:
        run_id = await _run_of(app, {"name": "nap/go"})
        await _until_status(app, run_id, "sleeping")
        assert not worker.busy  # a sleeping run holds no worker
        start = time.monotonic()
        run = await app.wait_for_run(run_id, timeout=10)
    await app.close()
    assert run.output == "rested"
    assert time.monotonic() - start < 5
    assert calls == {"before": 1, "after": 1}
    sleep = run.step("nap")
    assert sleep.kind == "sleep" and sleep.status == "completed" and sleep.output is None
    assert sleep.ended_at is not None and sleep.started_at is not None
    assert sleep.ended_at - sleep.started_at >= 0.4


async def test_sleeping_run_wakes_on_a_new_worker(sqlite_url: str) -> None:
    app = make_app(sqlite_url)

    @app.function(id="restart", trigger="restart/go")
    async def restart(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("wait", timedelta(seconds=0.5))
        return ctx.run_id

    async with app.worker():
        run_id = await _run_of(app, {"name": "restart/go"})
        await _until_status(app, run_id, "sleeping")
    await app.close()
    # a new app (a new process, as far as the database knows) with a new worker
    app2 = make_app(sqlite_url)
    app2.functions = app.functions
    async with app2.worker():
        run = await app2.wait_for_run(run_id, timeout=10)
    await app2.close()
    assert run.status == "completed" and run.output == run_id


async def test_wait_for_event_match_timeout_and_earlier_event(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="approval", trigger="order/created")
    async def approval(ctx: stepstone.Context) -> Any:
        got = await ctx.step.wait_for_event(
            "approved",
            event="order/approved",
            timeout=ctx.event.data["timeout"],
            if_="event.data.order == async.data.order",
        )
        return None if got is None else {"by": got.data["by"], "name": got.name}

    async with app.worker():
        # an approval sent before the wait exists must not match
        await app.send({"name": "order/approved", "data": {"order": 1, "by": "early"}})
        matched = await _run_of(app, {"name": "order/created", "data": {"order": 1, "timeout": 30}})
        timed_out = await _run_of(
            app, {"name": "order/created", "data": {"order": 2, "timeout": 0.3}}
        )
        await _until_status(app, matched, "waiting")
        await app.send({"name": "order/approved", "data": {"order": 3, "by": "other order"}})
        await app.send({"name": "order/approved", "data": {"order": 1, "by": "ada"}})
        run1 = await app.wait_for_run(matched, timeout=10)
        run2 = await app.wait_for_run(timed_out, timeout=10)
    await app.close()
    assert run1.output == {"by": "ada", "name": "order/approved"}
    assert run1.step("approved").kind == "wait"
    assert run2.output is None and run2.status == "completed"


async def test_many_waits_each_resumed_by_its_own_event(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="keyed", trigger="job/start")
    async def keyed(ctx: stepstone.Context) -> Any:
        got = await ctx.step.wait_for_event(
            "done", event="job/done", timeout=60, if_="event.data.k == async.data.k"
        )
        return got.data["result"] if got else None

    async with app.worker():
        runs = [await _run_of(app, {"name": "job/start", "data": {"k": k}}) for k in range(20)]
        for run_id in runs:
            await _until_status(app, run_id, "waiting")
        for k in reversed(range(0, 20, 2)):  # only the even keys
            await app.send({"name": "job/done", "data": {"k": k, "result": k * 100}})
        for k in range(0, 20, 2):
            run = await app.wait_for_run(runs[k], timeout=10)
            assert run.output == k * 100
        for k in range(1, 20, 2):
            run = await app.get_run(runs[k])
            assert run is not None and run.status == "waiting"
    await app.close()


async def test_invoke_returns_result_and_raises_step_error_on_failure(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="square", retries=0)
    async def square(ctx: stepstone.Context) -> Any:
        n = ctx.event.data["n"]
        if n < 0:
            raise ValueError("negative")
        return await ctx.step.run("mul", lambda: n * n)

    @app.function(id="caller", trigger="calc/go")
    async def caller(ctx: stepstone.Context) -> Any:
        a = await ctx.step.invoke("sq", function=square, data={"n": 7})
        try:
            await ctx.step.invoke("bad", function="square", data={"n": -1})
        except stepstone.StepError as err:
            return {"a": a, "error": err.error["message"]}
        return None

    async with app.worker():
        run = await send_and_wait(app, "calc/go")
    await app.close()
    assert run.output == {"a": 49, "error": "negative"}
    assert run.step("sq").kind == "invoke"


async def test_invoke_timeout_raises_step_error(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="slow-child")
    async def slow_child(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("long", 3600)

    @app.function(id="impatient", trigger="imp/go")
    async def impatient(ctx: stepstone.Context) -> Any:
        try:
            await ctx.step.invoke("child", function=slow_child, timeout=0.3)
        except stepstone.StepError as err:
            return err.name
        return "finished"

    async with app.worker():
        run = await send_and_wait(app, "imp/go")
    await app.close()
    assert run.output == "InvokeTimeoutError"


async def test_send_event_sends_once_across_replays(database_url: str) -> None:
    app = make_app(database_url)
    received: list[Any] = []
    attempts = {"n": 0}

    @app.function(id="sender", trigger="send/go")
    async def sender(ctx: stepstone.Context) -> Any:
        ids = await ctx.step.send_event(
            "notify", [stepstone.Event("user/notified", {"n": 1}), {"name": "user/notified"}]
        )
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("replay: the send must not happen again")
        return ids

    @app.function(id="receiver", trigger="user/notified")
    async def receiver(ctx: stepstone.Context) -> Any:
        received.append(ctx.event.id)
        return ctx.event.data

    async with app.worker():
        run = await send_and_wait(app, "send/go")
        ids = run.output
        assert len(ids) == 2
        for event_id in ids:
            [child] = await app.runs_for_event(event_id)
            await app.wait_for_run(child.id)
    await app.close()
    assert sorted(received) == sorted(ids)


async def test_durations_and_times_accepted_by_sleep_until(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="until", trigger="until/go")
    async def until(ctx: stepstone.Context) -> Any:
        soon = datetime.now(UTC) + timedelta(seconds=0.2)
        await ctx.step.sleep_until("dt", soon)
        await ctx.step.sleep_until("iso", soon.isoformat())
        await ctx.step.sleep("str", "100ms")
        return "ok"

    async with app.worker():
        run = await send_and_wait(app, "until/go")
    await app.close()
    assert run.output == "ok"
    assert [s.id for s in run.steps] == ["dt", "iso", "str"]
