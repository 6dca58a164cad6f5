"""An idle SQLite worker notices work committed by another process within milliseconds,
not after its poll interval (it watches SQLite's data_version)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import stepstone
from stepstone.engine.changewait import wait_for_change
from stepstone.store.filewatch import watch_writes

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


async def test_a_commits_many_writes_wake_the_wait_once(tmp_path: Path) -> None:
    """A commit writes the WAL file once per frame header and page; the wait stops
    listening at the first notice and listens again at its next probe, so a burst of
    writes costs the loop one or two wake-ups, not one per write."""
    path = tmp_path / "db-wal"
    path.write_bytes(b"")
    watch = watch_writes(str(path))
    assert watch is not None, "inotify is available on the CI machine"
    loop = asyncio.get_running_loop()
    notices = 0
    plain_add_reader = loop.add_reader

    def counting_add_reader(fd: Any, callback: Callable[[], None]) -> None:
        def counted() -> None:
            nonlocal notices
            notices += 1
            callback()

        plain_add_reader(fd, counted)

    committed = threading.Event()
    bursts, writes_per_burst = 8, 30

    def commit_like_sqlite() -> None:
        with open(path, "ab", buffering=0) as wal:
            for burst in range(bursts):
                for _ in range(writes_per_burst):
                    wal.write(b"x" * 64)
                    time.sleep(0.0003)  # a frame at a time, as a commit writes them
                if burst < bursts - 1:
                    time.sleep(0.01)
        committed.set()  # visible right after the last write (a commit: after its fsync)

    wake = asyncio.Event()
    loop.add_reader = counting_add_reader  # type: ignore[method-assign]
    try:
        writer = threading.Thread(target=commit_like_sqlite)
        writer.start()
        started = time.monotonic()
        await wait_for_change(
            wake,
            committed.is_set,  # the probe: "the commit is visible" once the writes end
            watch,
            # the timer, should the last follow-up come before the "commit": every
            # 0.2 s, so that the notices counted are nearly all the watch's
            change_poll=0.2,
            timeout=10.0,
            busy=lambda: False,
        )
        writer.join()
    finally:
        del loop.add_reader
        watch.close()
    assert wake.is_set() and time.monotonic() - started < 5
    # a notice where a burst begins, one or two more as its follow-ups end (more on a
    # loaded machine, whose writes come slower); listening throughout, each of the 240
    # writes could wake the loop (236 did)
    assert 1 <= notices <= 3 * bursts, notices


async def test_after_a_notice_the_probe_is_asked_more_often_than_asyncios_timers_allow(
    tmp_path: Path,
) -> None:
    """A commit is visible a fraction of a millisecond after its WAL write (the fsync);
    asyncio's timers cannot wait less than a millisecond, so the follow-ups after a
    notice are timed by a thread: asked every FOLLOW_UP seconds, on the event loop."""
    path = tmp_path / "db-wal"
    path.write_bytes(b"")
    watch = watch_writes(str(path))
    assert watch is not None, "inotify is available on the CI machine"
    asked: list[float] = []
    threads: set[int] = set()

    def probe() -> bool:  # visible after the notice's probe and 20 follow-ups
        asked.append(time.perf_counter())
        threads.add(threading.get_ident())
        return len(asked) > 22

    def write_soon() -> None:
        time.sleep(0.05)  # the wait is listening by then
        with open(path, "ab", buffering=0) as wal:
            wal.write(b"x" * 64)

    writer = threading.Thread(target=write_soon)
    writer.start()
    wake = asyncio.Event()
    try:
        await wait_for_change(wake, probe, watch, change_poll=5.0, timeout=10.0, busy=lambda: False)
    finally:
        writer.join()
        watch.close()
    assert wake.is_set() and len(asked) == 23
    assert threads == {threading.get_ident()}  # the probe runs on the loop's thread only
    follow_ups = [b - a for a, b in itertools.pairwise(asked[1:])]  # [0]: the wait's start
    # asyncio's timers: at least 1 ms apart each; the median hides a busy machine's hiccups
    assert sorted(follow_ups)[len(follow_ups) // 2] < 0.0009, follow_ups
