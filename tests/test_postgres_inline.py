"""PostgreSQL's inline commits (a lone run's, on the event loop's own connection: both
stores' are tested in test_inline_commit.py): a lost connection sends the write through
the queue and comes back by itself; it never blocks the loop for long, nor serves two."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

import stepstone
from stepstone.store import sql_store
from stepstone.store.postgres import PostgresStore
from stepstone.store.postgres_inline import TCP_USER_TIMEOUT_MS

from .helpers import count_inline_commits, make_app


async def test_a_lost_inline_connection_loses_no_step_and_comes_back(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its server process is killed between two steps: the next checkpoint goes through
    the queue, every step is saved once, and later writes are inline again."""
    counts = count_inline_commits(monkeypatch, PostgresStore)
    app = make_app(postgres_url)
    runs: dict[str, int] = {}
    killed: list[int] = []
    store = await app.store()
    assert isinstance(store, PostgresStore)

    def inline_pid() -> int:
        assert store._inline is not None and store._inline._conn is not None
        return store._inline._conn.info.backend_pid

    def kill(pid: int) -> None:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    @app.function(id="steps", trigger="t/steps")
    async def steps(ctx: stepstone.Context) -> int:
        total = 0
        for i in range(10):

            async def step(i: int = i) -> int:
                runs[f"s{i}"] = runs.get(f"s{i}", 0) + 1
                if i == 4 and not killed:  # killed as the step runs: its checkpoint finds it gone
                    killed.append(inline_pid())
                    await asyncio.to_thread(kill, killed[0])
                return i

            total += await ctx.step.run(f"s{i}", step)
        return total

    async def connected() -> None:
        deadline = time.monotonic() + 10
        while store._inline is None or store._inline._conn is None:
            assert time.monotonic() < deadline, "the inline connection did not come back"
            store._commit_inline(lambda tx: None, statement=True)  # asks for it
            await asyncio.sleep(0.05)

    try:
        await connected()
        first = inline_pid()
        async with app.worker(poll_interval=0.5):
            [event_id] = await app.send({"name": "t/steps"})
            [run] = await app.runs_for_event(event_id)
            assert (await app.wait_for_run(run.id, timeout=20)).output == sum(range(10))
            await connected()
            before = counts["others"]
            assert inline_pid() != first
            [again] = await app.send({"name": "t/steps"})
            [rerun] = await app.runs_for_event(again)
            await app.wait_for_run(rerun.id, timeout=20)
            assert counts["others"] > before  # inline again on the new connection
    finally:
        await app.close()
    assert killed == [first]
    assert runs == {f"s{i}": 2 for i in range(10)}  # once for each of the two runs
    with psycopg.connect(postgres_url) as conn:
        saved = conn.execute("SELECT COUNT(*) FROM steps WHERE run_id = %s", (run.id,))
        assert saved.fetchone() == (10,)


async def test_the_inline_connection_cannot_block_the_loop_for_long(postgres_url: str) -> None:
    """A server that stops answering without closing the connection frees the loop after
    `tcp_user_timeout`, unless the URL sets one itself."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        assert store._inline is not None and store._inline._conn is None  # not asked yet
        await asyncio.to_thread(store._inline.connect)
        assert store._inline._conn is not None
        options = store._inline._conn.info.get_parameters()
        assert options["tcp_user_timeout"] == str(TCP_USER_TIMEOUT_MS)
    finally:
        await store.close()
    joiner = "&" if "?" in postgres_url else "?"
    own = PostgresStore(postgres_url + f"{joiner}tcp_user_timeout=1234")
    await own.open()
    try:
        assert own._inline is not None
        await asyncio.to_thread(own._inline.connect)
        assert own._inline._conn is not None
        assert own._inline._conn.info.get_parameters()["tcp_user_timeout"] == "1234"
    finally:
        await own.close()


async def test_a_write_while_the_connection_is_in_use_goes_through_the_queue(
    postgres_url: str,
) -> None:
    """Two event loops sharing one store never interleave on the loop's connection: the
    second one's write is left to the queue."""
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        assert store._inline is not None
        await asyncio.to_thread(store._inline.connect)
        ran: list[str] = []
        with store._inline._in_use:  # another loop's write in flight
            done, _ = store._commit_inline(lambda tx: ran.append("second"), statement=True)
        assert not done and ran == []
        done, _ = store._commit_inline(lambda tx: ran.append("alone"), statement=True)
        assert done and ran == ["alone"]
    finally:
        await store.close()


async def test_a_quiet_senders_send_commits_inline(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that only sends: its first send opens the loop's connection (and queues),
    a send after a quiet spell commits on it, and a burst's sends queue for the writers."""
    monkeypatch.setattr(sql_store, "QUIET_AFTER", 0.5)  # wide margins for a loaded machine
    counts = count_inline_commits(monkeypatch, PostgresStore)
    app = make_app(postgres_url)
    try:
        store = await app.store()
        assert isinstance(store, PostgresStore)
        await asyncio.sleep(0.6)
        await app.send({"name": "t/first"})  # no connection yet: asked for, queued
        deadline = time.monotonic() + 10
        while store._inline is None or store._inline._conn is None:
            assert time.monotonic() < deadline, "the inline connection did not open"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        await app.send({"name": "t/quiet"})
        assert counts["sends"] == 1
        await asyncio.gather(*(app.send({"name": f"t/burst{i}"}) for i in range(20)))
        assert counts["sends"] == 1
    finally:
        await app.close()
    with psycopg.connect(postgres_url) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM events")}
    assert {"t/first", "t/quiet", *(f"t/burst{i}" for i in range(20))} <= names
