"""Every path that stores an event takes the one intake path: a run waiting for the event
resumes, a `cancel_on` rule listening for it cancels its run, and a function triggered by
it starts once. One test per source, on every store; the engine's own sources (a step's
send_event, an invoke, a run's end) from sync and async functions alike."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import stepstone
from stepstone.testing import TestClock
from tests.helpers import make_app
from tests.live_server import LiveServer, wait_for, wait_for_run

Source = Callable[[stepstone.App], Awaitable[None]]
FLAVOURS = ["async", "sync"]


def watch(app: stepstone.App, name: str, when: str | None = None) -> None:
    """The three observers of events named `name` matching CEL `when` (over the event as
    `async` for waits and cancel rules, as `event` for the trigger): `waiter` waits for one
    and returns its id; `victim` sleeps a day unless its cancel rule fires; `listener`
    is triggered by it."""
    condition = None if when is None else when.replace("EVENT", "async")

    @app.function(id="waiter", trigger="watch/start")
    async def waiter(ctx: stepstone.Context) -> Any:
        got = await ctx.step.wait_for_event("w", event=name, timeout="1h", if_=condition)
        return None if got is None else got.id

    @app.function(
        id="victim",
        trigger="watch/start",
        cancel_on=stepstone.Cancel(event=name, if_=condition),
    )
    async def victim(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("nap", "1d")

    trigger_if = None if when is None else when.replace("EVENT", "event")

    @app.function(id="listener", trigger=stepstone.on_event(name, if_=trigger_if))
    async def listener(ctx: stepstone.Context) -> Any:
        return ctx.event.id


async def _until(app: stepstone.App, run_id: str, *statuses: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        run = await app.get_run(run_id)
        assert run is not None
        if run.status in statuses:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is {run.status}, not {statuses}"
        await asyncio.sleep(0.01)


async def _observe(
    app: stepstone.App,
    source: Source,
    then: Callable[[str], Awaitable[None]] | None = None,
    *,
    started: str = "listener",
) -> str:
    """Start the observers, fire `source`, check all three saw the event (the function it
    `started` once), then `then(its id)` while the worker still runs; its id."""
    async with app.worker(poll_interval=0.02):
        [start] = await app.send({"name": "watch/start"})
        runs = {run.function_id: run.id for run in await app.runs_for_event(start)}
        await _until(app, runs["waiter"], "waiting")
        await _until(app, runs["victim"], "sleeping")
        await source(app)
        waited = await app.wait_for_run(runs["waiter"], timeout=15)
        assert waited.status == "completed", waited.error
        event_id: str = waited.output
        assert event_id, "the waiter timed out: the event did not resume it"
        victim = await _until(app, runs["victim"], "cancelled")
        assert victim.status == "cancelled"
        listened = await app.runs_for_event(event_id)
        assert [run.function_id for run in listened] == [started]  # started once
        assert (await app.wait_for_run(listened[0].id)).status == "completed"
        if then is not None:
            await then(event_id)
    return event_id


# -- from outside: app.send, the HTTP intake, the CLI --------------------------------------
async def test_app_send(database_url: str) -> None:
    app = make_app(database_url)
    watch(app, "src/sent")
    try:
        await _observe(app, lambda app: app.send({"name": "src/sent"}))
    finally:
        await app.close()


def test_http_intake(database_url: str) -> None:
    app = make_app(database_url)
    watch(app, "src/http")
    with LiveServer(app, dev=True) as server, server.client() as client:
        [start] = client.post("/e/key", json={"name": "watch/start"}).json()["ids"]
        runs = {r["function_id"]: r["id"] for r in client.get(f"/v1/events/{start}").json()["runs"]}
        wait_for_run(client, runs["waiter"], "waiting")
        wait_for_run(client, runs["victim"], "sleeping")
        answer = client.post("/e/key", json=[{"name": "src/http"}])
        assert answer.status_code == 200, answer.text
        [event_id] = answer.json()["ids"]
        assert wait_for_run(client, runs["waiter"])["output"] == event_id
        assert wait_for_run(client, runs["victim"])["status"] == "cancelled"
        listened = wait_for(lambda: client.get(f"/v1/events/{event_id}").json()["runs"])
        assert [r["function_id"] for r in listened] == ["listener"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])  # another process: a shared file
async def test_cli_send(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (
        f"sqlite:///{tmp_path / 'cli.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    module = tmp_path / "cli_intake_app.py"
    module.write_text(
        textwrap.dedent(
            """
            import stepstone
            app = stepstone.App("cli-intake")
            """
        )
    )
    app = make_app(url)
    watch(app, "src/cli")

    async def source(app: stepstone.App) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        command = [sys.executable, "-m", "stepstone", "send", "cli_intake_app:app", "src/cli"]
        done = await asyncio.to_thread(
            subprocess.run, [*command, "-d", url], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    try:
        await _observe(app, source)
    finally:
        await app.close()


# -- from the engine: a step's send_event, an invoke, a run's end, cron, rerun ----------------
@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_steps_send_event(database_url: str, flavour: str) -> None:
    app = make_app(database_url)
    watch(app, "src/step-sent")
    event = stepstone.Event("src/step-sent", {"from": "step"})
    if flavour == "async":

        @app.function(id="sender", trigger="go")
        async def sender(ctx: stepstone.Context) -> Any:
            return await ctx.step.send_event("s", event)
    else:

        @app.function(id="sender", trigger="go")
        def sync_sender(ctx: stepstone.Context) -> Any:
            return ctx.step.send_event("s", event)

    try:
        event_id = await _observe(app, lambda app: app.send({"name": "go"}))
        stored = await app.get_event(event_id)
        assert stored is not None and stored.event.data == {"from": "step"}
    finally:
        await app.close()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_an_invoke(database_url: str, flavour: str) -> None:
    app = make_app(database_url)
    invoked = "stepstone/function.invoked"
    # the waiter and the victim listen for this invoke; `listener` is the invoked function
    watch(app, invoked, when='EVENT.data.marker == "m"')
    if flavour == "async":

        @app.function(id="invoker", trigger="go")
        async def invoker(ctx: stepstone.Context) -> Any:
            return await ctx.step.invoke("i", function="listener", data={"marker": "m"})
    else:

        @app.function(id="invoker", trigger="go")
        def sync_invoker(ctx: stepstone.Context) -> Any:
            return ctx.step.invoke("i", function="listener", data={"marker": "m"})

    async def the_invoke_returns_its_output(event_id: str) -> None:
        [parent] = await app.list_runs(function_id="invoker")
        done = await app.wait_for_run(parent.id)
        assert done.output == event_id  # the invoked run's output is the invoke's result

    try:
        await _observe(app, lambda app: app.send({"name": "go"}), the_invoke_returns_its_output)
    finally:
        await app.close()


@pytest.mark.parametrize(
    "ending",
    [
        ("async", "completed", "stepstone/function.finished"),
        ("sync", "completed", "stepstone/function.finished"),
        ("async", "failed", "stepstone/function.failed"),
        ("sync", "failed", "stepstone/function.failed"),
        ("async", "cancelled", "stepstone/function.cancelled"),
    ],
    ids=lambda e: "-".join(e[:2]),
)
async def test_a_runs_end(database_url: str, ending: tuple[str, str, str]) -> None:
    flavour, status, name = ending
    app = make_app(database_url)
    watch(app, name, when='EVENT.data.function_id == "ender"')
    if flavour == "async":

        @app.function(id="ender", trigger="go", retries=0)
        async def ender(ctx: stepstone.Context) -> Any:
            if ctx.event.data["end"] == "failed":
                raise stepstone.NonRetriableError("as asked")
            if ctx.event.data["end"] == "cancelled":
                await ctx.step.sleep("forever", "1d")
            return "ok"
    else:

        @app.function(id="ender", trigger="go", retries=0)
        def sync_ender(ctx: stepstone.Context) -> Any:
            if ctx.event.data["end"] == "failed":
                raise stepstone.NonRetriableError("as asked")
            return "ok"

    async def source(app: stepstone.App) -> None:
        [go] = await app.send({"name": "go", "data": {"end": status}})
        [run] = await app.runs_for_event(go)
        if status == "cancelled":
            await _until(app, run.id, "sleeping")
            assert await app.cancel(run.id)
        assert (await app.wait_for_run(run.id)).status == status

    try:
        event_id = await _observe(app, source)
        announced = await app.get_event(event_id)
        assert announced is not None and announced.event.name == name
    finally:
        await app.close()


async def test_a_cron_tick(database_url: str) -> None:
    clock = TestClock(start=1_800_000_000.0)  # a minute boundary
    app = make_app(database_url, clock=clock)
    tick = "stepstone/scheduled.timer"
    watch(app, tick, when='EVENT.data.function_id == "ticker"')

    @app.function(id="ticker", trigger=stepstone.on_cron("* * * * *"))
    async def ticker(ctx: stepstone.Context) -> Any:
        return "tick"

    async def source(app: stepstone.App) -> None:
        clock.advance(61)  # the next minute: the cron fires

    try:
        # a tick starts its own function's run only, as an invoke does
        await _observe(app, source, started="ticker")
    finally:
        await app.close()


async def test_a_rerun_is_planned_like_any_run(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(
        id="victim",
        trigger="watch/start",
        cancel_on=stepstone.Cancel(event="src/stop"),
        rate_limit=stepstone.RateLimit(2, "1h"),
    )
    async def victim(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("nap", "1d")

    try:
        async with app.worker(poll_interval=0.02):
            [start] = await app.send({"name": "watch/start"})
            [first] = await app.runs_for_event(start)
            await _until(app, first.id, "sleeping")
            # the rerun has its function's cancel rule: the stop event cancels both
            second = await app.rerun(first.id)
            await _until(app, second, "sleeping")
            await app.send({"name": "src/stop"})
            for run_id in (first.id, second):
                assert (await _until(app, run_id, "cancelled")).status == "cancelled"
            # and its flow control: a third run within the hour is over the rate limit
            third = await app.rerun(first.id)
            assert (await _until(app, third, "skipped")).status == "skipped"
    finally:
        await app.close()
