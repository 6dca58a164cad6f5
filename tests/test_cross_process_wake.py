"""An idle SQLite worker notices work committed by another process within milliseconds,
not after its poll interval (it watches SQLite's data_version)."""

from __future__ import annotations

import asyncio
import time

import stepstone

from .helpers import make_app


def _define(app: stepstone.App) -> None:
    @app.function(id="echo", trigger="t/echo")
    async def echo(ctx: stepstone.Context) -> str:
        return await ctx.step.run("a", lambda: "ok")


async def test_idle_worker_sees_other_processes_events(sqlite_url: str) -> None:
    worker_app, sender_app = make_app(sqlite_url), make_app(sqlite_url)
    _define(worker_app)
    _define(sender_app)  # another App, its own store and connections, like another process
    try:
        async with worker_app.worker(poll_interval=30.0):
            await sender_app.store()
            started = time.monotonic()
            [event_id] = await sender_app.send({"name": "t/echo"})
            [run] = await sender_app.runs_for_event(event_id)
            done = await sender_app.wait_for_run(run.id, timeout=10)
            assert done.output == "ok"
            assert time.monotonic() - started < 5  # the poll alone would take 30 s
    finally:
        await sender_app.close()
        await worker_app.close()


async def test_change_poll_zero_turns_the_watch_off(sqlite_url: str) -> None:
    app = make_app(sqlite_url)
    _define(app)
    try:
        worker = app.worker(poll_interval=0.05, change_poll=0)
        async with worker:
            assert worker._probe is None
    finally:
        await app.close()


async def test_a_write_wakes_the_idle_worker_before_its_next_probe(sqlite_url: str) -> None:
    """The WAL file's watch: with the probe's timer at 3 s, a commit from another store is
    still seen at once (the timer alone would take up to 3 s, and 1.5 on average)."""
    worker_app, sender_app = make_app(sqlite_url), make_app(sqlite_url)
    _define(worker_app)
    _define(sender_app)
    try:
        async with worker_app.worker(poll_interval=30.0, change_poll=3.0) as worker:
            assert worker._watch is not None  # Linux: inotify
            await sender_app.store()
            await asyncio.sleep(3.5)  # the worker idles past its first probe
            timings = []
            for _ in range(3):
                started = time.monotonic()
                [event_id] = await sender_app.send({"name": "t/echo"})
                [run] = await sender_app.runs_for_event(event_id)
                done = await sender_app.wait_for_run(run.id, timeout=10)
                assert done.output == "ok"
                timings.append(time.monotonic() - started)
                await asyncio.sleep(0.5)
            assert max(timings) < 1.0, timings
    finally:
        await sender_app.close()
        await worker_app.close()
