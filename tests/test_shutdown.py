"""Graceful shutdown: a stopping worker lets its running steps finish and be saved, then
hands its runs back at once, so another worker resumes them within a second or two
instead of after the lease (30 s here); a second SIGTERM stops at once."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import stepstone
from tests.apps.scale import STEPS, make_app, read_ledger
from tests.process import WorkerProcess

LEASE = 30.0


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def _file_database(database_url: str, tmp_path: Path) -> str:
    # worker processes share the database: a memory one is private to its process
    return f"sqlite:///{tmp_path / 'shared.db'}" if database_url == "memory://" else database_url


async def test_leaving_the_worker_block_saves_running_steps_and_hands_runs_back(
    database_url: str,
) -> None:
    app = stepstone.App("grace", database=database_url)
    calls: Counter[str] = Counter()
    in_second = asyncio.Event()

    @app.function(id="three", trigger="grace/go")
    async def three(ctx: stepstone.Context) -> list[str]:
        async def work(name: str, pause: float) -> str:
            calls[name] += 1
            if name == "second":
                in_second.set()
            await asyncio.sleep(pause)
            return name

        return [
            await ctx.step.run("first", work, "first", 0),
            await ctx.step.run("second", work, "second", 0.5),
            await ctx.step.run("third", work, "third", 0),
        ]

    try:
        async with app.worker(lease_seconds=LEASE, grace=10):
            [event_id] = await app.send({"name": "grace/go"})
            await asyncio.wait_for(in_second.wait(), 30)
            began = time.monotonic()
        assert time.monotonic() - began >= 0.3  # it waited for the step in flight
        [run] = await app.runs_for_event(event_id)
        saved = await app.get_run(run.id)
        assert saved is not None and saved.status == "running"
        assert {s.id: s.status for s in saved.steps} == {
            "first": "completed",
            "second": "completed",
        }
        due = await (await app.store()).next_due()
        assert due is not None and due <= time.time()  # due now, not when the lease ends
        async with app.worker(lease_seconds=LEASE):
            done = await app.wait_for_run(run.id, timeout=5)
        assert done.output == ["first", "second", "third"]
        assert calls == {"first": 1, "second": 1, "third": 1}
        with_history = await (await app.store()).get_run(run.id, with_history=True)
        assert with_history is not None
        assert [h.kind for h in with_history.history].count("released") == 1
    finally:
        await app.close()


async def test_an_abort_skips_the_grace_and_still_hands_the_run_back(database_url: str) -> None:
    app = stepstone.App("abort", database=database_url)
    in_step = asyncio.Event()

    @app.function(id="slow", trigger="abort/go")
    async def slow(ctx: stepstone.Context) -> None:
        async def long() -> None:
            in_step.set()
            await asyncio.sleep(60)

        await ctx.step.run("long", long)

    worker = app.worker(lease_seconds=LEASE, grace=60)
    try:
        await worker.start()
        [event_id] = await app.send({"name": "abort/go"})
        await asyncio.wait_for(in_step.wait(), 30)
        worker.abort()  # a second signal, before the stop has begun
        began = time.monotonic()
        await worker.stop()
        assert time.monotonic() - began < 5
        [run] = await app.runs_for_event(event_id)
        due = await (await app.store()).next_due()
        assert due is not None and due <= time.time()
        saved = await app.get_run(run.id)
        assert saved is not None and saved.status == "running"
    finally:
        await worker.stop()
        await app.close()


async def test_sigterm_hands_runs_in_flight_to_another_worker_at_once(
    database_url: str, tmp_path: Path
) -> None:
    url = _file_database(database_url, tmp_path)
    ledger, logs, pause, count = tmp_path / "ledger", tmp_path / "logs", 1.0, 6
    second = WorkerProcess(url, ledger, logs, lease=LEASE)
    first = None
    app = make_app(url)
    try:
        second.wait_ready()
        second.signal(signal.SIGSTOP)  # idle until the first worker has every run
        first = WorkerProcess(url, ledger, logs, lease=LEASE, extra=("--grace", "20s"))
        first.wait_ready()
        events = [{"name": "scale/run", "data": {"pause": pause}} for _ in range(count)]
        run_ids = [(await app.runs_for_event(i))[0].id for i in await app.send(events)]

        def all_in_their_second_step() -> bool:
            firsts = {e.run_id for e in read_ledger(ledger) if e.step_id == "step-0"}
            return firsts >= set(run_ids)

        await wait_until(all_in_their_second_step, "every run to finish its first step")
        second.signal(signal.SIGCONT)
        stopped_at = time.time()
        first.signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.process.wait, 30) == 0, first.log()
        assert "handed 6 runs back" in first.log()
        for run_id in run_ids:
            run = await app.wait_for_run(run_id, timeout=60)
            assert run.status == "completed", run
        executions = read_ledger(ledger)
        counts = Counter((e.run_id, e.step_id) for e in executions)
        assert len(counts) == count * STEPS and set(counts.values()) == {1}  # none repeated
        for run_id in run_ids:
            mine = sorted((e for e in executions if e.run_id == run_id), key=lambda e: e.started_at)
            run = await app.get_run(run_id)
            assert run is not None and run.output == {"tokens": [e.token for e in mine]}
            by_first = [e for e in mine if e.pid == first.pid]
            by_second = [e for e in mine if e.pid == second.pid]
            assert by_first and by_second, mine
            # the first worker started no step after SIGTERM; its steps in flight ended
            # within `pause`, and the second worker went on within 2 s of that
            # (a step may begin in the instant between the kill() call and the handler)
            assert max(e.started_at for e in by_first) < stopped_at + 0.1
            resumed = min(e.started_at for e in by_second)
            assert resumed - stopped_at < pause + 2.0, (resumed - stopped_at, mine)
    finally:
        await app.close()
        if first is not None:
            first.close()
        second.stop()


async def test_a_second_sigterm_stops_at_once_and_the_run_is_due_now(
    database_url: str, tmp_path: Path
) -> None:
    url = _file_database(database_url, tmp_path)
    worker = WorkerProcess(
        url, tmp_path / "ledger", tmp_path / "logs", lease=LEASE, extra=("--grace", "60s")
    )
    app = make_app(url)
    try:
        worker.wait_ready()
        [event_id] = await app.send({"name": "scale/slow", "data": {"pause": 120}})

        async def started() -> bool:
            runs = await app.runs_for_event(event_id)
            return bool(runs) and runs[0].started_at is not None

        deadline = time.monotonic() + 30
        while not await started():
            assert time.monotonic() < deadline, worker.log()
            await asyncio.sleep(0.05)
        worker.signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert worker.process.poll() is None  # the grace: waiting for the slow step
        worker.signal(signal.SIGTERM)
        began = time.monotonic()
        assert await asyncio.to_thread(worker.process.wait, 30) == 0, worker.log()
        assert time.monotonic() - began < 5
        due = await (await app.store()).next_due()
        assert due is not None and due <= time.time(), worker.log()
    finally:
        await app.close()
        worker.close()


def test_grace_must_not_be_negative() -> None:
    with pytest.raises(stepstone.ConfigError, match="grace"):
        stepstone.App("x", database="memory://").worker(grace=-1)
