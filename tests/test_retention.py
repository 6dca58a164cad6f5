"""Retention: workers delete finished runs, their steps and history, and the events no run
needs, once the retention period has passed; runs still going are never touched; the
database stays the same size as runs come and go; `stepstone prune` does it at once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

import stepstone
from stepstone.cli import main
from stepstone.clock import Clock
from stepstone.engine import pruning
from stepstone.ids import hash_step_id, new_id
from stepstone.records import Event, RunStatus, StepRecord, StepStatus
from stepstone.retention import DEFAULT_RETENTION
from stepstone.store import NewEvent, NewRun, Pruned, Store, store_from_url

DAY = 86400.0


class Shifted(Clock):
    """Wall-clock time, moved on by `shift` seconds at will."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def _rows(url: str, table: str) -> int | None:
    """Rows of a table, read outside the app (None for the memory store)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
            assert row is not None
            return int(row[0])
    return None


def _pages(url: str) -> tuple[int, int]:
    """A SQLite file's pages, and how many of them are free."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int(pages), int(free)


def build(url: str, clock: Clock) -> stepstone.App:
    app = stepstone.App("keep", database=url, retention="1d", clock=clock)

    @app.function(id="quick", trigger="keep/quick")
    async def quick(ctx: stepstone.Context) -> dict[str, Any]:
        first = await ctx.step.run("first", lambda: "x" * 2000)
        second = await ctx.step.run("second", lambda: {"n": ctx.event.data["n"]})
        return {"first": len(first), "second": second}

    @app.function(id="napper", trigger="keep/nap")
    async def napper(ctx: stepstone.Context) -> str:
        await ctx.step.run("before", lambda: "awake")
        await ctx.step.sleep("long", "300d")
        return "rested"

    @app.function(id="waiter", trigger="keep/wait")
    async def waiter(ctx: stepstone.Context) -> Any:
        got = await ctx.step.wait_for_event("go", event="keep/go", timeout="300d")
        return None if got is None else got.data

    return app


async def _until(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_finished_runs_go_and_the_database_stays_flat(database_url: str) -> None:
    clock = Shifted()
    app = build(database_url, clock)
    cycles, per_cycle = 5, 150
    sizes: list[tuple[int, int]] = []
    counts: list[tuple[int | None, ...]] = []
    try:
        async with app.worker(prune_interval=0.2):
            [nap_event] = await app.send({"name": "keep/nap"})
            [wait_event] = await app.send({"name": "keep/wait"})
            [napping] = await app.runs_for_event(nap_event)
            [waiting] = await app.runs_for_event(wait_event)

            async def settled() -> bool:
                runs = [await app.get_run(napping.id), await app.get_run(waiting.id)]
                return [r.status for r in runs if r] == ["sleeping", "waiting"]

            await _until(settled, "the long runs to sleep and wait")
            for cycle in range(cycles):
                events = [{"name": "keep/quick", "data": {"n": n}} for n in range(per_cycle)]
                ids = await app.send(events)
                last = (await app.runs_for_event(ids[-1]))[0]
                for event_id in ids:
                    [run] = await app.runs_for_event(event_id)
                    assert (await app.wait_for_run(run.id, timeout=60)).status == "completed"
                page = await app.list_runs(function_id="quick", limit=1000)
                assert all(r.status == "completed" for r in page) and len(page) == per_cycle
                clock.offset += 2 * DAY  # they ended two days ago: past the retention

                async def pruned(run_id: str = last.id) -> bool:
                    return await app.get_run(run_id) is None and not (
                        await app.list_runs(function_id="quick", limit=10)
                    )

                await _until(pruned, f"cycle {cycle}'s runs to be pruned")
                await _until(
                    lambda: _only_trigger_events(app, {nap_event, wait_event}),
                    "the events to be pruned",
                )
                counts.append(tuple(_rows(database_url, t) for t in TABLES))
                if database_url.startswith("sqlite:///"):

                    async def given_back() -> bool:  # the prune after the deletes, at most
                        return _pages(database_url)[1] < 64

                    await _until(given_back, "the free pages to go back")
                    sizes.append(_pages(database_url))
            # the runs still going are untouched, and go on
            nap = await app.get_run(napping.id)
            assert nap is not None and nap.status == "sleeping"
            assert [(s.id, s.status) for s in nap.steps] == [
                ("before", "completed"),
                ("long", "sleeping"),
            ]
            await app.send({"name": "keep/go", "data": {"ok": True}})
            done = await app.wait_for_run(waiting.id, timeout=30)
            assert done.status == "completed" and done.output == {"ok": True}
    finally:
        await app.close()
    assert len(set(counts)) == 1, counts  # the same rows after every cycle
    if database_url != "memory://":
        steps, history = counts[0][TABLES.index("steps")], counts[0][TABLES.index("history")]
        assert steps is not None and steps <= 3  # the long runs' own
        assert history is not None and history < 20
    if sizes:
        first_pages = sizes[0][0]
        assert max(pages for pages, _ in sizes) <= first_pages * 1.25, sizes
        assert all(free < 64 for _, free in sizes), sizes  # the space went back


TABLES = ("runs", "steps", "history", "events", "run_events", "jobs", "waits")


async def _only_trigger_events(app: stepstone.App, wanted: set[str]) -> bool:
    page = await app.list_events(limit=100)
    return {e.event.id for e in page} == wanted


@pytest.mark.parametrize("older", ["3d"])
def test_stepstone_prune_deletes_at_once(database_url: str, tmp_path: Path, older: str) -> None:
    if database_url == "memory://":
        database_url = f"sqlite:///{tmp_path / 'prune.db'}"
    clock = Shifted()
    clock.offset = -3 * DAY  # the runs ended three days ago
    app = build(database_url, clock)

    async def make() -> tuple[str, str]:
        try:
            async with app.worker():
                [old] = await app.send({"name": "keep/quick", "data": {"n": 1}})
                [run] = await app.runs_for_event(old)
                await app.wait_for_run(run.id, timeout=30)
                clock.offset = 0.0
                [new] = await app.send({"name": "keep/quick", "data": {"n": 2}})
                [fresh] = await app.runs_for_event(new)
                await app.wait_for_run(fresh.id, timeout=30)
                return run.id, fresh.id
        finally:
            await app.close()

    old_id, fresh_id = asyncio.run(make())
    runner = CliRunner()
    refused = runner.invoke(main, ["prune", "-d", database_url, "--older-than", "1h"])
    assert refused.exit_code != 0 and "24h or more" in refused.output
    result = runner.invoke(main, ["prune", "-d", database_url, "--older-than", "1d"])
    assert result.exit_code == 0, result.output
    assert "pruned 1 runs and 2 events" in result.output  # its event and its finished event

    async def check() -> None:
        reader = stepstone.App("reader", database=database_url)
        try:
            assert await reader.get_run(old_id) is None
            assert await reader.get_run(fresh_id) is not None
        finally:
            await reader.close()

    asyncio.run(check())


def test_retention_is_24h_or_more_or_0() -> None:
    assert stepstone.App("a", database="memory://").retention == DEFAULT_RETENTION == 7 * DAY
    assert stepstone.App("a", database="memory://", retention=0).retention == 0
    assert stepstone.App("a", database="memory://", retention="30d").retention == 30 * DAY
    with pytest.raises(stepstone.ConfigError, match="24h or more"):
        stepstone.App("a", database="memory://", retention="1h")
    with pytest.raises(stepstone.ConfigError):
        stepstone.App("a", database="memory://", retention=-1)


async def _finished_runs(store: Store, count: int, steps: int, at: float) -> None:
    """`count` runs of `steps` completed steps each, ended at `at`, written as the store's
    own calls write them (their event, the runs with their steps, a claim, each end)."""
    events = [NewEvent(Event("keep/big", id=new_id(), ts=0), "{}", at) for _ in range(count)]
    await store.ingest(events)
    runs = [NewRun(new_id(), "big", [e.event.id or ""], at, at) for e in events]
    done = [
        StepRecord(f"s{i}", hash_step_id(f"s{i}"), StepStatus.COMPLETED, attempts=1, output=i)
        for i in range(steps)
    ]
    await store.create_runs(runs, [(run.id, each) for run in runs for each in done])
    claims = await store.claim("w1", count, at, 30.0)
    assert len(claims) == count
    await asyncio.gather(
        *(
            store.finish(c.lease, status=RunStatus.COMPLETED, output_json="1", error=None, at=at)
            for c in claims
        )
    )


async def _batches(store: Store, before: float, **options: Any) -> tuple[Pruned, list[int]]:
    """A prune by the engine, and the size of each batch it asked the store for."""
    sizes: list[int] = []
    store_prune = store.prune

    async def counted(before: float, *, limit: int) -> Pruned:
        sizes.append(limit)
        return await store_prune(before, limit=limit)

    store.prune = counted  # type: ignore[method-assign]
    try:
        return await pruning.prune(store, before, **options), sizes
    finally:
        del store.prune  # the class's again


async def test_a_prune_of_large_runs_makes_its_batches_smaller(database_url: str) -> None:
    """A batch of runs of many steps holds the database longer than the store's budget:
    the next batches are smaller, however many runs a batch may take."""
    store = store_from_url(database_url)
    await store.open()
    try:
        await _finished_runs(store, 20, 300, at=1000.0)
        store.prune_budget = 0.0005  # well under a batch of 10 runs of 300 steps
        done, sizes = await _batches(store, 2000.0)
        assert done == Pruned(20, 20) and done.seconds > 0
        assert sizes[0] == pruning.FIRST == 10 and max(sizes[1:]) < 10, sizes
    finally:
        await store.close()


async def test_a_prune_of_small_runs_makes_its_batches_larger(database_url: str) -> None:
    """Batches that take well under the budget double, up to the largest allowed."""
    store = store_from_url(database_url)
    await store.open()
    try:
        await _finished_runs(store, 200, 0, at=1000.0)
        store.prune_budget = 10.0  # no batch comes near it
        done, sizes = await _batches(store, 2000.0, batch=40)
        assert done == Pruned(200, 200)
        assert sizes == [10, 20, 40, 40, 40, 40, 40], sizes  # the last finds 10: the end
    finally:
        await store.close()


def test_the_next_batch_follows_the_time_the_last_one_held_the_database() -> None:
    budget = 0.01
    assert pruning.next_size(100, 0.001, most=500, budget=budget) == 200  # doubled at most
    assert pruning.next_size(400, 0.001, most=500, budget=budget) == 500  # up to the most
    assert pruning.next_size(100, 0.02, most=500, budget=budget) == 50  # in proportion
    assert pruning.next_size(100, 1.0, most=500, budget=budget) == 1  # never none
    assert pruning.next_size(100, 0.0, most=500, budget=budget) == 200  # no time reported
