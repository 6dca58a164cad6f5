"""What only the PostgreSQL store does: URL options, concurrent migrations and claims,
LISTEN/NOTIFY wake-ups, and surviving connections that die under it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import psycopg.errors
import pytest

from stepstone.errors import ConfigError, LeaseLostError
from stepstone.records import RunStatus
from stepstone.store import Claim, store_from_url
from stepstone.store.postgres import PostgresStore, postgres_from_url
from stepstone.store.postgres_listen import Listener
from stepstone.store.queries import migrations
from stepstone.store.tx import Tx
from tests.pg_cluster import PostgresCluster
from tests.test_store_contract import LEASE, T0, claim_one, new_event, queue_runs, step


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    opened = postgres_from_url(postgres_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def test_url_options_configure_the_pool_and_the_rest_goes_to_libpq() -> None:
    store = store_from_url(
        "postgres://me:secret@db.example:6432/jobs?pool_max_size=3&pool_timeout=2.5&sslmode=disable"
    )
    assert isinstance(store, PostgresStore)
    assert (store.min_size, store.max_size, store.timeout) == (2, 3, 2.5)
    assert store.conninfo == "postgres://me:secret@db.example:6432/jobs?sslmode=disable"
    with pytest.raises(ConfigError, match=r"pool_max_size='many' is not a number"):
        postgres_from_url("postgresql://db/x?pool_max_size=many")
    with pytest.raises(ConfigError, match="pool sizes are invalid"):
        postgres_from_url("postgresql://db/x?pool_min_size=5&pool_max_size=2")


async def test_open_fails_with_the_reason_when_the_server_is_unreachable(
    postgres_cluster: PostgresCluster,
) -> None:
    url = (
        postgres_cluster.url("postgres").replace(f"port={postgres_cluster.port}", "port=1")
        + "&pool_timeout=1&password=hunter2"
    )
    store = store_from_url(url.replace("postgresql://postgres@", "postgresql://postgres:pw@"))
    with pytest.raises(ConfigError, match="cannot open the PostgreSQL database") as failure:
        await store.open()
    assert ":pw@" not in str(failure.value)  # no password in messages


async def test_migrations_run_once_when_many_processes_open_a_new_database(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.url(postgres_cluster.create_database())
    stores = [postgres_from_url(url + "&pool_min_size=1") for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))  # each opens on its own thread
    await asyncio.gather(*(s.close() for s in stores))
    with psycopg.connect(url) as conn:
        applied = conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [row[0] for row in applied] == [m[0] for m in migrations("postgres")]


async def test_concurrent_claims_never_hand_out_a_run_twice(
    store: PostgresStore, postgres_url: str
) -> None:
    run_ids = await queue_runs(store, 300)
    workers = [postgres_from_url(postgres_url) for _ in range(5)]
    await asyncio.gather(*(w.open() for w in workers))

    async def drain(worker: PostgresStore, owner: str) -> list[str]:
        got: list[str] = []
        while claims := await worker.claim(owner, 7, T0, LEASE):
            got += [c.run.id for c in claims]
        return got

    try:
        results = await asyncio.gather(*(drain(w, f"w{i}") for i, w in enumerate(workers)))
    finally:
        await asyncio.gather(*(w.close() for w in workers))
    claimed = [run_id for got in results for run_id in got]
    assert sorted(claimed) == sorted(run_ids)  # every run, each exactly once
    assert sum(1 for got in results if got) > 1  # the claims really ran side by side


async def test_notify_wakes_subscribers_and_passes_cancels(
    store: PostgresStore, postgres_url: str
) -> None:
    woken, cancelled = asyncio.Event(), asyncio.Queue[str]()
    listening = postgres_from_url(postgres_url)
    await listening.open()
    await listening.subscribe(woken.set, cancelled.put_nowait)
    try:
        woken.clear()  # subscribing wakes once: work may have come before it
        [run_id] = await queue_runs(store, 1)  # written through another pool
        await asyncio.wait_for(woken.wait(), 10)
        await claim_one(store)
        await store.request_cancel(run_id, T0 + 1)
        assert await asyncio.wait_for(cancelled.get(), 10) == run_id
        assert listening._listener is not None and listening._listener.notifications >= 2
    finally:
        await listening.unsubscribe(woken.set)
        await listening.close()


async def test_claims_and_renewals_send_no_notification(store: PostgresStore) -> None:
    await queue_runs(store, 1)
    listener = Listener(store.conninfo)
    await listener.add(lambda: None, lambda run_id: None)
    try:
        claim = await claim_one(store)
        await store.renew([claim.lease], T0 + LEASE)
        # a release does notify: once it arrives, anything sent before it has arrived too
        await store.reschedule(claim.lease, at=T0 + 5, now=T0, status=claim.run.status)
        for _ in range(200):
            if listener.notifications:
                break
            await asyncio.sleep(0.05)
        assert listener.notifications == 1
    finally:
        await listener.close()


async def test_the_listener_reconnects_after_its_connection_is_killed(
    store: PostgresStore, postgres_cluster: PostgresCluster
) -> None:
    wakes = asyncio.Queue[None]()
    listener = Listener(store.conninfo, max_backoff=0.2)
    await listener.add(lambda: wakes.put_nowait(None), lambda run_id: None)
    try:
        with postgres_cluster.admin() as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%'"
            ).fetchall()
        assert killed
        while listener.connections < 2:  # it reconnects by itself ...
            await asyncio.wait_for(wakes.get(), 10)  # ... and wakes everyone when it does
        while not wakes.empty():
            wakes.get_nowait()
        await queue_runs(store, 1)
        await asyncio.wait_for(wakes.get(), 10)  # notifications flow again
    finally:
        await listener.close()


async def test_a_pooled_connection_killed_by_the_server_is_replaced(
    store: PostgresStore, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    await queue_runs(store, 1)  # the pool's connections are all in use once
    database = postgres_url.split("/")[3].split("?")[0]
    with postgres_cluster.admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
    # the next writes meet dead connections first; they are retried on fresh ones
    for _ in range(store.max_size + 1):
        assert (await store.ingest([new_event()])).new == [True]
    assert len(await store.list_runs(limit=100)) == store.max_size + 2


def test_writers_must_leave_connections_for_reads() -> None:
    assert postgres_from_url("postgresql://db/x?writers=3").writers == 3
    with pytest.raises(ConfigError, match=r"writers=10 is invalid with pool_max_size=10"):
        postgres_from_url("postgresql://db/x?writers=10")
    with pytest.raises(ConfigError, match=r"writers=0 is invalid"):
        postgres_from_url("postgresql://db/x?writers=0")


async def _queued_behind_a_lock(
    url: str, store: PostgresStore, claims: list[Claim]
) -> list[object]:
    """Saves a step for every claim: the first write holds up the store's only writer (a
    row lock), so all the others are queued by the time it goes on, and form one batch."""
    with psycopg.connect(url, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("SELECT 1 FROM jobs WHERE run_id = %s FOR UPDATE", (claims[0].run.id,))
        first = asyncio.ensure_future(store.save_step(claims[0].lease, step("a", output=0), "0"))
        await asyncio.sleep(0.3)  # the writer now waits for the lock
        rest = asyncio.gather(
            *(
                store.save_step(c.lease, step("a", output=i), str(i))
                for i, c in enumerate(claims)
                if i
            ),
            return_exceptions=True,
        )
        await asyncio.sleep(0.3)
        blocker.execute("COMMIT")
    await first
    return list(await rest)


def _transactions(url: str, run_ids: list[str]) -> int:
    """How many transactions wrote these runs' steps (xmin: the writing transaction)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM steps WHERE run_id = ANY(%s)", (run_ids,)
        ).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
async def one_writer(postgres_url: str) -> AsyncIterator[PostgresStore]:
    store = postgres_from_url(postgres_url + "&writers=1")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_writes_queued_together_commit_in_one_transaction(
    postgres_url: str, one_writer: PostgresStore
) -> None:
    await queue_runs(one_writer, 6)
    claims = await one_writer.claim("w1", 6, T0, LEASE)
    assert await _queued_behind_a_lock(postgres_url, one_writer, claims) == [None] * 5
    assert _transactions(postgres_url, [c.run.id for c in claims[1:]]) == 1
    for index, claim in enumerate(claims):
        run = await one_writer.get_run(claim.run.id)
        # every column as saved (the batch's checkpoints travel as one statement's rows)
        assert run is not None and run.steps == [step("a", output=index)]


async def test_a_refused_write_in_a_batch_is_refused_alone(
    postgres_url: str, one_writer: PostgresStore
) -> None:
    await queue_runs(one_writer, 6)
    claims = await one_writer.claim("w1", 6, T0, LEASE)
    stale = claims[3].lease
    await one_writer.finish(stale, status=RunStatus.COMPLETED, output_json=None, error=None, at=T0)
    results = await _queued_behind_a_lock(postgres_url, one_writer, claims)
    refused = [i for i, r in enumerate(results, start=1) if isinstance(r, LeaseLostError)]
    assert refused == [3] and results.count(None) == 4
    for index in (0, 1, 2, 4, 5):
        run = await one_writer.get_run(claims[index].run.id)
        assert run is not None and [s.output for s in run.steps] == [index]
    ended = await one_writer.get_run(stale.run_id)
    assert ended is not None and ended.steps == []


async def test_a_renewal_passes_over_a_job_another_transaction_holds(
    postgres_url: str, store: PostgresStore
) -> None:
    """Waiting for the row could deadlock with a batch of run ends (PostgreSQL breaks a
    deadlock only after a second): the held job is renewed next time, not reported lost."""
    await queue_runs(store, 2)
    held, free = await store.claim("w1", 2, T0, LEASE)
    with psycopg.connect(postgres_url, autocommit=True) as other:
        other.execute("BEGIN")
        other.execute("SELECT 1 FROM jobs WHERE run_id = %s FOR UPDATE", (held.run.id,))
        result = await asyncio.wait_for(store.renew([held.lease, free.lease], T0 + 99), 5)
        due = dict(other.execute("SELECT run_id, available_at FROM jobs").fetchall())
        other.execute("ROLLBACK")
    assert result == ([], [])  # neither is lost
    assert due == {held.run.id: T0 + LEASE, free.run.id: T0 + 99}
    assert await store.renew([held.lease], T0 + 120) == ([], [])  # once free, renewed
    next_due = await store.next_due()
    assert next_due == T0 + 99


async def test_a_transaction_that_deadlocked_is_run_again(store: PostgresStore) -> None:
    calls = []

    def script(tx: Tx) -> int:
        calls.append(1)
        tx("next_due")
        if len(calls) == 1:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return len(calls)

    assert await store._write(script) == 2


async def test_other_errors_are_not_retried(store: PostgresStore) -> None:
    calls = []

    def script(tx: Tx) -> None:
        calls.append(1)
        tx("next_due")
        raise LeaseLostError("refused")  # a domain error: the caller must see it at once

    with pytest.raises(LeaseLostError):
        await store._write(script)
    assert len(calls) == 1


async def test_subscribing_again_after_the_last_unsubscribe_listens_again(
    store: PostgresStore,
) -> None:
    woken = asyncio.Event()
    await store.subscribe(woken.set, lambda run_id: None)
    await store.unsubscribe(woken.set)  # the last one: the LISTEN connection closes
    await store.subscribe(woken.set, lambda run_id: None)
    try:
        woken.clear()
        await queue_runs(store, 1)
        await asyncio.wait_for(woken.wait(), 10)
    finally:
        await store.unsubscribe(woken.set)


async def test_a_claim_commits_without_waiting_for_the_disk_and_a_checkpoint_waits(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost claim only makes its runs due again, and a run's first checkpoint (durable)
    puts the claim on disk before it: only claims turn synchronous_commit off."""
    sent: list[str] = []
    execute = psycopg.Connection.execute

    def recording(self: psycopg.Connection[object], query: object, *args: object, **kw: object):  # type: ignore[no-untyped-def]
        sent.append(str(query))
        return execute(self, query, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(psycopg.Connection, "execute", recording)
    await queue_runs(store, 1)
    sent.clear()
    lease = (await claim_one(store)).lease
    assert "SET LOCAL synchronous_commit = off" in sent
    sent.clear()
    await store.save_step(lease, step("a", output=1), "1")
    await store.finish(lease, status=RunStatus.COMPLETED, output_json=None, error=None, at=T0)
    assert "SET LOCAL synchronous_commit = off" not in sent
