"""On PostgreSQL too, a run that executes alone commits on the event loop's own connection
(no writer-thread round trip), a send to an idle worker of the same process as well; a
lost connection sends the write through the queue and comes back by itself."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

import stepstone
from stepstone.store.postgres import PostgresStore
from stepstone.store.postgres_inline import TCP_USER_TIMEOUT_MS, InlineCommits

from .helpers import make_app


def _count_inline(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Writes committed inline, by kind: sends (intake scripts) and the rest."""
    counts = {"sends": 0, "others": 0}
    run = InlineCommits.run

    def counting(self: InlineCommits, script: Any, *, statement: bool) -> tuple[bool, Any]:
        done, value = run(self, script, statement=statement)
        if done:
            send = "ingest" in getattr(script, "__qualname__", "")
            counts["sends" if send else "others"] += 1
        return done, value

    monkeypatch.setattr(InlineCommits, "run", counting)
    return counts


async def test_a_lone_run_and_its_send_commit_inline_and_durably(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = _count_inline(monkeypatch)
    app = make_app(postgres_url)

    @app.function(id="steps", trigger="t/steps")
    async def steps(ctx: stepstone.Context) -> int:
        total = 0
        for i in range(20):
            total += await ctx.step.run(f"s{i}", lambda i=i: i)
        return total

    try:
        async with app.worker(poll_interval=0.5):
            await asyncio.sleep(0.2)  # the worker's start-up writes are done: it is idle
            [event_id] = await app.send({"name": "t/steps"})
            [run] = await app.runs_for_event(event_id)
            done = await app.wait_for_run(run.id, timeout=10)
    finally:
        await app.close()
    assert done.output == sum(range(20))
    assert counts["sends"] == 1, counts
    # most steps (a claim or a refresh may sit in the queue at times); without it, none
    assert counts["others"] >= 14, counts
    with psycopg.connect(postgres_url) as conn:  # another connection sees every step
        saved = conn.execute("SELECT COUNT(*) FROM steps WHERE run_id = %s", (run.id,))
        assert saved.fetchone() == (20,)


async def test_a_lost_inline_connection_loses_no_step_and_comes_back(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its server process is killed between two steps: the next checkpoint goes through
    the queue, every step is saved once, and later writes are inline again."""
    counts = _count_inline(monkeypatch)
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
