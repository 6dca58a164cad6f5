"""PostgreSQL write transactions in pipeline mode (store/postgres_pipeline.py): BEGIN, the
writes and COMMIT in one round trip, a failure anywhere rolled back before it is raised;
and an idle worker's claim committed on the loop's connection without the WAL's flush; a
claim of runs without flow control found, leased and read in one round trip."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import psycopg.errors
import pytest
from psycopg._pipeline_base import BasePipeline
from psycopg.pq import TransactionStatus

import stepstone
from stepstone.store.postgres import PostgresStore
from stepstone.store.postgres_inline import InlineCommits
from stepstone.store.postgres_pipeline import pipelined_transaction
from stepstone.store.scripts.claim import ClaimScript

from .helpers import make_app


@pytest.fixture
def conn(postgres_url: str) -> Any:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE parent (id INT PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (id INT PRIMARY KEY, parent INT REFERENCES parent (id)"
            " DEFERRABLE INITIALLY DEFERRED)"
        )
        yield conn


def count_syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sync messages sent (each one a round trip: the client waits for its answer)."""
    count = [0]
    enqueue = BasePipeline._enqueue_sync

    def counting(self: BasePipeline) -> None:
        count[0] += 1
        enqueue(self)

    monkeypatch.setattr(BasePipeline, "_enqueue_sync", counting)
    return count


def rows(conn: psycopg.Connection[Any], table: str) -> list[int]:
    return [row[0] for row in conn.execute(f"SELECT id FROM {table} ORDER BY id")]


def test_writes_and_commit_travel_in_one_round_trip(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = count_syncs(monkeypatch)
    with pipelined_transaction(conn):
        conn.execute("INSERT INTO parent VALUES (1)")
        conn.execute("INSERT INTO child VALUES (1, 1)")
    assert syncs[0] == 1
    # a result read mid-way costs one more, and only one
    with pipelined_transaction(conn) as pipeline:
        conn.execute("INSERT INTO parent VALUES (2)")
        cursor = conn.execute("SELECT count(*) FROM parent")
        pipeline.sync()
        assert cursor.fetchone() == (2,)
        conn.execute("INSERT INTO child VALUES (2, 2)")
    assert syncs[0] == 3
    assert conn.info.transaction_status is TransactionStatus.IDLE
    assert rows(conn, "parent") == [1, 2] and rows(conn, "child") == [1, 2]


def test_a_failed_statement_rolls_the_whole_transaction_back(
    conn: psycopg.Connection[Any],
) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation), pipelined_transaction(conn):
        conn.execute("INSERT INTO parent VALUES (1)")
        conn.execute("INSERT INTO parent VALUES (1)")
        conn.execute("INSERT INTO parent VALUES (2)")
    assert conn.info.transaction_status is TransactionStatus.IDLE
    assert rows(conn, "parent") == []


def test_the_scripts_own_error_rolls_back_what_it_wrote(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(LookupError), pipelined_transaction(conn) as pipeline:
        conn.execute("INSERT INTO parent VALUES (1)")
        pipeline.sync()  # written and answered: only the rollback can undo it now
        raise LookupError("the script gave up")
    assert conn.info.transaction_status is TransactionStatus.IDLE
    assert rows(conn, "parent") == []
    with pipelined_transaction(conn):  # the connection is usable again
        conn.execute("INSERT INTO parent VALUES (3)")
    assert rows(conn, "parent") == [3]


def test_a_check_that_fails_at_commit_is_raised_and_nothing_is_saved(
    conn: psycopg.Connection[Any],
) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation), pipelined_transaction(conn):
        conn.execute("INSERT INTO parent VALUES (1)")
        conn.execute("INSERT INTO child VALUES (1, 99)")  # deferred: checked by COMMIT
    assert conn.info.transaction_status is TransactionStatus.IDLE
    assert rows(conn, "parent") == [] and rows(conn, "child") == []


def test_a_lazy_transaction_commits_without_the_flush_and_only_itself(
    conn: psycopg.Connection[Any],
) -> None:
    setting = "SELECT current_setting('synchronous_commit')"
    with pipelined_transaction(conn, lazy=True) as pipeline:
        cursor = conn.execute(setting)
        pipeline.sync()
        assert cursor.fetchone() == ("off",)
    assert conn.execute(setting).fetchone() == ("on",)  # SET LOCAL: that transaction only


async def test_an_idle_workers_claims_commit_inline_and_lazily(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs sent from another process are claimed on the worker loop's own connection
    (no thread hops) without waiting for the flush; its checkpoints wait for it."""
    commits: list[tuple[str, bool]] = []
    run = InlineCommits.run

    def recording(self: InlineCommits, script: Any, *, statement: bool, lazy: bool = False) -> Any:
        done, value = run(self, script, statement=statement, lazy=lazy)
        if done:
            commits.append(("claim" if isinstance(script, ClaimScript) else "other", lazy))
        return done, value

    monkeypatch.setattr(InlineCommits, "run", recording)
    worker_app, sender_app = make_app(postgres_url), make_app(postgres_url)
    for app in (worker_app, sender_app):

        @app.function(id="two", trigger="t/two")
        async def two(ctx: stepstone.Context) -> int:
            a = await ctx.step.run("a", lambda: 1)
            return a + await ctx.step.run("b", lambda: 2)

    try:
        store = await worker_app.store()
        assert isinstance(store, PostgresStore)
        async with worker_app.worker(poll_interval=0.2):
            for _ in range(3):
                [event_id] = await sender_app.send({"name": "t/two"})
                [sent] = await sender_app.runs_for_event(event_id)
                assert (await sender_app.wait_for_run(sent.id, timeout=20)).output == 3
    finally:
        await sender_app.close()
        await worker_app.close()
    claims = [lazy for kind, lazy in commits if kind == "claim"]
    others = [lazy for kind, lazy in commits if kind == "other"]
    assert len(claims) >= 3 and all(claims)
    assert others and not any(others)


async def test_a_claim_of_runs_without_flow_control_is_one_round_trip_and_commit(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found, leased, started and read in one round trip; COMMIT is the second."""
    app = make_app(postgres_url)

    @app.function(id="plain", trigger="t/plain")
    async def plain(ctx: stepstone.Context) -> None:
        return None

    try:
        store = await app.store()
        assert isinstance(store, PostgresStore)
        sent = await app.send([{"name": "t/plain"} for _ in range(3)])
        syncs = count_syncs(monkeypatch)
        claims = await store.claim("w1", 10, time.time(), 30.0)
        assert syncs[0] == 2
        assert len(claims) == 3 and {c.run.event_ids[0] for c in claims} == set(sent)
        assert all(c.run.status.value == "running" and c.lease.fence == 1 for c in claims)
        assert all(c.events and c.events[0].name == "t/plain" for c in claims)
    finally:
        await app.close()
