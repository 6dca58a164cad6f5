"""A run that executes alone commits its steps on the event loop's thread (no writer-thread
round trip); with company, checkpoints go through the group commit. Both are durable and
fenced alike."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest

import stepstone
from stepstone.errors import LeaseLostError
from stepstone.records import StepRecord, StepStatus
from stepstone.store import Lease, queries, sql_store
from stepstone.store.sqlite import SQLiteStore

from .helpers import count_inline_commits, make_app, read_run


async def test_a_lone_run_and_its_send_commit_inline_and_durably(
    shared_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(shared_database_url)
    counts = count_inline_commits(monkeypatch, type(await app.store()))

    @app.function(id="steps", trigger="t/steps")
    async def steps(ctx: stepstone.Context) -> int:
        total = 0
        for i in range(20):
            total += await ctx.step.run(f"s{i}", lambda i=i: i)
        return total

    try:
        # a slow poll: the send wakes the worker, and fewer claims share the writer
        async with app.worker(poll_interval=0.5):
            await asyncio.sleep(0.2)  # the worker's start-up writes are done: it is idle
            [event_id] = await app.send({"name": "t/steps"})
            [run] = await app.runs_for_event(event_id)
            done = await app.wait_for_run(run.id, timeout=10)
    finally:
        await app.close()
    assert done.output == sum(range(20))
    assert counts["sends"] == 1, counts
    # most steps (a claim or the registry's refresh may sit in the queue at times, more
    # often on a loaded machine); without the inline path, none
    assert counts["others"] >= 14, counts
    seen = await read_run(shared_database_url, run.id)  # another App sees every step
    assert len(seen.steps) == 20


async def test_parallel_steps_use_the_group_commit(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags: list[bool] = []
    save_step = SQLiteStore.save_step

    async def record(self: SQLiteStore, *args: Any, inline: bool = False) -> None:
        flags.append(inline)
        await save_step(self, *args, inline=inline)

    monkeypatch.setattr(SQLiteStore, "save_step", record)
    app = make_app(sqlite_url)
    both = asyncio.Event()

    async def step(value: int) -> int:
        if value == 2:
            both.set()
        await both.wait()  # both handlers end together: the first save has company
        return value

    @app.function(id="pair", trigger="t/pair")
    async def pair(ctx: stepstone.Context) -> list[int]:
        return list(await asyncio.gather(ctx.step.run("a", step, 1), ctx.step.run("b", step, 2)))

    try:
        async with app.worker(poll_interval=0.02):
            [event_id] = await app.send({"name": "t/pair"})
            [run] = await app.runs_for_event(event_id)
            assert (await app.wait_for_run(run.id, timeout=10)).output == [1, 2]
    finally:
        await app.close()
    assert len(flags) == 2 and flags[0] is False


async def test_an_inline_commit_is_fenced(shared_database_url: str) -> None:
    """On either database: a stale lease's inline write is refused, a live one's saved."""
    app = make_app(shared_database_url)

    @app.function(id="f", trigger="t/f")
    async def f(ctx: stepstone.Context) -> None:
        return None

    try:
        await app.send({"name": "t/f"})
        store = await app.store()
        [claim] = await store.claim("me", 1, time.time(), 30.0)
        step = StepRecord(
            id="s", hashed_id="h", status=StepStatus.COMPLETED, attempts=1, started_at=1.0
        )
        stale = Lease(claim.lease.run_id, claim.lease.fence - 1, "me")
        with pytest.raises(LeaseLostError):
            await store.save_step(stale, step, "1", inline=True)
        await store.save_step(claim.lease, step, "2", inline=True)
        run = await store.get_run(claim.lease.run_id)
        assert run is not None and [s.output for s in run.steps] == [2]
    finally:
        await app.close()


async def test_reads_keep_a_small_page_cache(sqlite_url: str) -> None:
    """Reader connections and the writer cap SQLite's page cache, so a process's memory
    does not grow with the database through them: readers at 512 KiB, the writer at
    1 MiB (half the default)."""
    store = SQLiteStore(sqlite_url[len("sqlite:///") :])
    await store.open()
    try:
        read = await store._read(
            lambda tx: store._local.conn.execute("PRAGMA cache_size").fetchone()[0]
        )
        writer = store._writer_conn
        assert writer is not None
        assert read == -512
        assert writer.execute("PRAGMA cache_size").fetchone()[0] == -1024
    finally:
        await store.close()


async def test_claims_commit_without_fsync_and_every_other_write_with_it(
    sqlite_url: str,
) -> None:
    """A batch of claims alone is committed with synchronous=NORMAL (no fsync: a claim lost
    to a power cut only makes its runs due again), on the writer's connection or inline
    (an idle worker's); every other write on either connection commits at the store's
    FULL, the checkpoints above all."""
    worker_app, sender_app = make_app(sqlite_url), make_app(sqlite_url)
    for app in (worker_app, sender_app):

        @app.function(id="pair", trigger="t/pair")
        async def pair(ctx: stepstone.Context) -> int:
            # parallel steps: their checkpoints go through the writer's group commit
            a, b = await asyncio.gather(ctx.step.run("a", lambda: 1), ctx.step.run("b", lambda: 2))
            return a + b

    store = await worker_app.store()
    assert isinstance(store, SQLiteStore)
    assert store._writer_conn is not None
    inline_conn = store._inline_connection()  # an idle worker's claims commit on it
    assert inline_conn is not None
    by_connection: tuple[list[str], list[str]] = ([], [])
    store._writer_conn.set_trace_callback(by_connection[0].append)
    inline_conn.set_trace_callback(by_connection[1].append)
    try:
        async with worker_app.worker():
            runs = []
            for _ in range(3):  # sent by another store: the worker claims them
                [event_id] = await sender_app.send({"name": "t/pair"})
                [run] = await sender_app.runs_for_event(event_id)
                runs.append(await sender_app.wait_for_run(run.id, timeout=20))
            assert [run.output for run in runs] == [3, 3, 3]
    finally:
        await sender_app.close()
        await worker_app.close()

    def flat(sql: str) -> str:
        return " ".join(line for line in sql.lower().split() if line)

    def commits_of(statements: list[str]) -> list[tuple[str, list[str]]]:
        """Each commit on one connection, with the synchronous mode it committed at: a
        transaction's statements, or a statement run alone (autocommit)."""
        mode, transaction, commits = "full", None, []
        for sql in statements:
            text = flat(sql)
            if text.startswith("pragma synchronous="):
                mode = text.split("=", 1)[1]
            elif text.startswith("begin"):
                transaction = []
            elif text == "commit" and transaction is not None:
                commits.append((mode, transaction))
                transaction = None
            elif transaction is not None:
                transaction.append(text)
            else:
                commits.append((mode, [text]))
        return commits

    claim_sql = flat(queries.load("sqlite")["claim_due"])
    commits = commits_of(by_connection[0]) + commits_of(by_connection[1])
    claims = [(m, sqls) for m, sqls in commits if any(claim_sql[:200] in s for s in sqls)]
    leased = [m for m, sqls in claims if any("update jobs set owner" in s for s in sqls)]
    others = [m for m, sqls in commits if not any(claim_sql[:200] in s for s in sqls)]
    checkpoints = [m for m, sqls in commits if any("steps" in s for s in sqls)]
    assert len(leased) >= 3 and set(leased) == {"normal"}
    assert checkpoints and set(others) == {"full"}
    # the idle worker's claims went inline, and that connection went back to FULL after
    inline_claims = [sqls for m, sqls in commits_of(by_connection[1]) if m == "normal"]
    assert any("update jobs set owner" in s for sqls in inline_claims for s in sqls)


def _count_intake_paths(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many intake writes (sends) committed inline, and how many were queued."""
    counts = {"inline": 0, "queued": 0}
    inline, queued = SQLiteStore._commit_inline, SQLiteStore._write

    def is_intake(script: Any) -> bool:
        return "ingest" in getattr(script, "__qualname__", "")

    def count_inline(self: SQLiteStore, script, *, statement):  # type: ignore[no-untyped-def]
        done, value = inline(self, script, statement=statement)
        counts["inline"] += done and is_intake(script)
        return done, value

    async def count_queued(self: SQLiteStore, script):  # type: ignore[no-untyped-def]
        counts["queued"] += is_intake(script)
        return await queued(self, script)

    monkeypatch.setattr(SQLiteStore, "_commit_inline", count_inline)
    monkeypatch.setattr(SQLiteStore, "_write", count_queued)
    return counts


async def test_a_send_to_an_idle_worker_commits_inline(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run an idle worker of the sending process takes is stored and leased on the
    event loop's thread; a send to a busy worker, or one that starts no run it takes,
    goes through the group commit. Either way the event and its run are durable."""
    counts = _count_intake_paths(monkeypatch)
    monkeypatch.setattr(sql_store, "QUIET_AFTER", float("inf"))  # a quiet store: the next test
    app = make_app(sqlite_url)
    release = asyncio.Event()

    @app.function(id="hold", trigger="t/hold")
    async def hold(ctx: stepstone.Context) -> str:
        await ctx.step.run("wait", release.wait)
        return "held"

    @app.function(id="quick", trigger="t/quick")
    async def quick(ctx: stepstone.Context) -> str:
        return "quick"

    try:
        # no poll's claim meanwhile: sends wake the worker
        async with app.worker(poll_interval=5.0):
            await asyncio.sleep(0.2)  # the worker's start-up writes are done: it is idle
            await app.send({"name": "t/nobody"})  # no run: nothing for the worker to take
            assert counts == {"inline": 0, "queued": 1}
            [held_event] = await app.send({"name": "t/hold"})  # idle: inline
            assert counts == {"inline": 1, "queued": 1}
            [held] = await app.runs_for_event(held_event)
            assert held.status.value == "running"  # leased in the send's own transaction
            [busy_event] = await app.send({"name": "t/quick"})  # busy with `hold`: queued
            assert counts == {"inline": 1, "queued": 2}
            [busy] = await app.runs_for_event(busy_event)
            assert (await app.wait_for_run(busy.id, timeout=10)).output == "quick"
            release.set()
            assert (await app.wait_for_run(held.id, timeout=10)).output == "held"
    finally:
        await app.close()
    path = sqlite_url[len("sqlite:///") :]
    with sqlite3.connect(path) as conn:  # another connection sees what the sends stored
        names = {row[0] for row in conn.execute("SELECT name FROM events")}
    assert {"t/nobody", "t/hold", "t/quick"} <= names


async def test_a_send_to_a_quiet_store_commits_inline_and_a_burst_queues(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process with no worker (a web app that only sends): a send after a quiet spell
    commits on the loop's thread, and the sends of a burst after it go through the group
    commit, as does a send of many events. Every event is durable either way."""
    counts = _count_intake_paths(monkeypatch)
    monkeypatch.setattr(sql_store, "QUIET_AFTER", 0.5)  # wide margins for a loaded machine
    app = make_app(sqlite_url)
    await app.store()
    try:
        await asyncio.sleep(0.6)  # the store's opening writes are past
        await app.send({"name": "t/first"})
        assert counts == {"inline": 1, "queued": 0}
        await asyncio.gather(*(app.send({"name": f"t/burst{i}"}) for i in range(20)))
        assert counts == {"inline": 1, "queued": 20}
        await asyncio.sleep(0.6)
        await app.send({"name": "t/later"})
        assert counts == {"inline": 2, "queued": 20}
        await asyncio.sleep(0.6)
        many = [{"name": "t/many"} for _ in range(sql_store.QUIET_MAX_EVENTS + 1)]
        await app.send(many)  # quiet, but long to commit: the writer takes it
        assert counts == {"inline": 2, "queued": 21}
    finally:
        await app.close()
    path = sqlite_url[len("sqlite:///") :]
    with sqlite3.connect(path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM events")}
    assert {"t/first", "t/later", *(f"t/burst{i}" for i in range(20))} <= names
