"""Backlog independence: how fast a worker drains queued runs in an empty database, and in
one holding a large backlog of queued runs plus runs sleeping far ahead.

The backlog is loaded by SQL, not by sending: one template run of each kind is made
through stepstone (a run queued by `app.send`; a run a worker put to sleep for 300 days),
then its rows in every table it has rows in are copied under new run ids, 100,000 a
statement (`INSERT ... SELECT` over a generated series). The copies are the rows stepstone
itself would have written: the queued ones are due (fence 0, `available_at` in the past,
in order after the template), so the claim sees them in `jobs_by_time` and the worker
drains them; the sleepers are released jobs (fence 1, no owner) due in 300 days, in
`jobs_resumes_by_time`. All copies share the template's trigger event (a run's
`event_ids` may name any stored event). A run of a function the worker does not serve
would not do: a claim takes any due run and fails one whose function is missing.

Both databases are drained the same way: a fresh worker (concurrency 100) drains
`backlog_runs` runs of a one-step function; the rate is measured between the first and
the last of them returning, so the worker's start is not in it. Rounds alternate between
the two databases; medians. The backlog database keeps nearly all of its backlog
throughout (each round takes `backlog_runs` of it)."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import stepstone

from . import sqlconn

CHUNK = 100_000
SLEEP = "300d"  # "far in the future" (a sleep may last up to a year)
CONCURRENCY = 100
# each table a run has rows in, with its run id column (events are shared, not copied)
TABLES = [("runs", "id"), ("run_events", "run_id"), ("jobs", "run_id"), ("steps", "run_id")]
TABLES.append(("history", "run_id"))


async def _noop(i: int) -> int:
    return i


def _app(url: str, returned: Callable[[], None] = lambda: None) -> stepstone.App:
    app = stepstone.App("bench", database=url)

    @app.function(id="drain", trigger="bench/drain")
    async def drain(ctx: stepstone.Context) -> None:
        await ctx.step.run("s0", _noop, 0)
        returned()

    @app.function(id="parked", trigger="bench/parked")
    async def parked(ctx: stepstone.Context) -> None:
        await ctx.step.sleep("nap", SLEEP)

    return app


async def _templates(url: str) -> tuple[str, str]:
    """(a queued run's id, a sleeping run's id), made through stepstone. The queued one is
    then put off to a far date (as a delayed start would be), so that no worker takes it:
    its copies get due times of their own."""
    app = _app(url)
    try:
        [event] = await app.send({"name": "bench/parked"})
        [sleeper] = await app.runs_for_event(event)
        async with app.worker():
            while (run := await app.get_run(sleeper.id)) is None or run.status != "sleeping":
                await asyncio.sleep(0.01)
        [event] = await app.send({"name": "bench/drain"})
        [queued] = await app.runs_for_event(event)
    finally:
        await app.close()
    with sqlconn.connect(url) as conn:
        sqlconn.run(conn, "UPDATE jobs SET available_at = 1e11 WHERE run_id = :t", t=queued.id)
        conn.commit()
    return queued.id, sleeper.id


class Loader:
    """Copies a template run's rows under new ids: substr(id, 1, 16) + a 10-digit number,
    so they stay 26-character ids that sort after the template's time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = sqlconn.dialect(url)
        self.next = 0  # copy numbers are unique across calls
        self.seconds = 0.0

    def copy(self, template: str, count: int, spacing: float, due: float | None) -> None:
        """`count` copies of run `template`; copy i is due `i * spacing` s after `due` (None:
        the template's due time)."""
        if count <= 0:
            return
        start = time.perf_counter()
        with sqlconn.connect(self.url) as conn:
            if self.dialect == "sqlite":
                conn.execute("PRAGMA synchronous=OFF")  # setup, not the workload
            else:  # the jobs triggers NOTIFY idle workers: none is running
                conn.execute("SET session_replication_role = replica")
                conn.execute("SET synchronous_commit = off")
            statements = [self._statement(conn, table, column) for table, column in TABLES]
            for first in range(self.next, self.next + count, CHUNK):
                last = min(first + CHUNK, self.next + count) - 1
                for sql in statements:
                    sqlconn.run(conn, sql, first=first, last=last, t=template, gap=spacing, due=due)
                conn.commit()
        self.next += count
        self.seconds += time.perf_counter() - start

    def _statement(self, conn: Any, table: str, id_column: str) -> str:
        columns = [c for c in sqlconn.columns(conn, table) if (table, c) != ("history", "seq")]
        if self.dialect == "sqlite":
            new_id = f"substr(t.{id_column}, 1, 16) || printf('%010d', n.i)"
            series = (
                "(WITH RECURSIVE s(i) AS (SELECT :first UNION ALL "
                "SELECT i + 1 FROM s WHERE i < :last) SELECT i FROM s) AS n"
            )
        else:
            new_id = f"substr(t.{id_column}, 1, 16) || lpad(n.i::text, 10, '0')"
            series = "generate_series(:first::bigint, :last::bigint) AS n(i)"
        exprs = []
        for c in columns:
            if c == id_column:
                exprs.append(new_id)
            elif table == "jobs" and c in ("available_at", "queued_at"):
                exprs.append(f"COALESCE(:due, t.{c}) + n.i * :gap")
            else:
                exprs.append(f"t.{c}")
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)} "
            f"FROM {table} AS t, {series} WHERE t.{id_column} = :t"
        )

    def settle(self) -> None:
        """Leaves the loaded database as stepstone's own writes would have: on disk, with
        its statistics.

        SQLite: the copies were written with `synchronous=OFF`, so they sit in the page
        cache, dirty, and the first fsync of the database file (the first checkpoint of
        the WAL by the drain's commits) would write them all, in the middle of the
        first round, which then ran at 30-50% of the others. Had stepstone
        written them, its own commits would have synced them as they went, so the files
        are synced here. PostgreSQL: VACUUM ANALYZE the loaded tables, as autovacuum
        would soon after a bulk load (and so that it does not start in the middle of a
        measurement)."""
        if self.dialect == "sqlite":
            path = sqlconn.sqlite_path(self.url)
            for name in (path, f"{path}-wal"):
                if os.path.exists(name):
                    fd = os.open(name, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            return
        with sqlconn.connect(self.url, autocommit=True) as conn:
            for table, _ in TABLES:
                conn.execute(f"VACUUM ANALYZE {table}")


async def drain(url: str, runs: int) -> dict[str, float]:
    """A fresh worker drains `runs` due runs: runs/s between the first and the last return."""
    times: list[float] = []
    done = asyncio.get_running_loop().create_future()

    def returned() -> None:
        times.append(time.perf_counter())
        if len(times) >= runs and not done.done():
            done.set_result(None)

    before = await asyncio.to_thread(sqlconn.count_completed, url)
    app = _app(url, returned)
    try:
        async with app.worker(concurrency=CONCURRENCY):
            await asyncio.wait_for(done, timeout=120 + runs / 20)
            # the last of them durable, before this worker stops and hands the rest back
            while await asyncio.to_thread(sqlconn.count_completed, url) < before + runs:
                await asyncio.sleep(0.005)
    finally:
        await app.close()
    span = times[runs - 1] - times[0]
    return {"runs_per_s": (runs - 1) / span if span > 0 else float("nan"), "seconds": span}


def explain(url: str, limit: int = CONCURRENCY) -> dict[str, Any]:
    """The claim's plan with the backlog present: PostgreSQL's EXPLAIN (ANALYZE, BUFFERS)
    with the parameters bound (a custom plan) and as a prepared statement's generic plan
    (psycopg prepares a statement run 5 times), each in a transaction rolled back; SQLite's
    EXPLAIN QUERY PLAN. The query is the one the claim starts with: claim_due on SQLite,
    claim_at_once on PostgreSQL (claim_due's rows, leased in the same statement)."""
    from stepstone.store import queries

    dialect = sqlconn.dialect(url)
    name = "claim_due" if dialect == "sqlite" else "claim_at_once"
    sql = queries.named(dialect)[name]
    now = time.time()
    params: dict[str, Any] = {"now": now, "due_by": now + 0.1, "limit": limit, "new_limit": limit}
    with sqlconn.connect(url) as conn:
        if dialect == "sqlite":
            rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
            return {
                "query": name,
                "sqlite_query_plan": "\n".join(str(r[-1]) for r in rows),
                "params": params,
            }
        params.update(owner="explain", until=now + 30, data='{"worker": "explain"}')
        custom = sqlconn.lines(conn, f"EXPLAIN (ANALYZE, BUFFERS) {sql}", **params)
        conn.rollback()
        types = {"due_by": "float8", "now": "float8", "limit": "int", "new_limit": "int"}
        types.update(owner="text", until="float8", data="text")
        prepared = sql
        for i, each in enumerate(types, 1):
            prepared = prepared.replace(f":{each}", f"${i}")
        conn.execute(f"PREPARE {name} ({', '.join(types.values())}) AS {prepared}")
        conn.execute("SET plan_cache_mode = force_generic_plan")
        values = ", ".join(repr(params[n]) for n in types)  # numbers and plain strings
        generic = sqlconn.lines(conn, f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE {name} ({values})")
        conn.rollback()
    return {"query": name, "postgres_custom": custom, "postgres_generic": generic, "params": params}


async def backlog(
    empty_url: str, full_url: str, runs: int, queued: int, sleeping: int, rounds: int
) -> dict[str, Any]:
    empty_t, _ = await _templates(empty_url)
    full_t, sleeper_t = await _templates(full_url)
    empty, full = Loader(empty_url), Loader(full_url)
    await asyncio.to_thread(full.copy, full_t, queued, 1e-6, time.time())
    await asyncio.to_thread(full.copy, sleeper_t, sleeping - 1, 0.0, None)  # and the template
    await asyncio.to_thread(full.settle)
    rates: dict[str, list[float]] = {"empty": [], "backlog": []}
    for _ in range(rounds):
        await asyncio.to_thread(empty.copy, empty_t, runs, 1e-6, time.time())
        await asyncio.to_thread(empty.settle)
        rates["empty"].append((await drain(empty_url, runs))["runs_per_s"])
        rates["backlog"].append((await drain(full_url, runs))["runs_per_s"])
    plan = await asyncio.to_thread(explain, full_url)
    counts = await asyncio.to_thread(sqlconn.job_counts, full_url)
    e, b = statistics.median(rates["empty"]), statistics.median(rates["backlog"])
    return {
        "empty_runs_per_s": e,
        "backlog_runs_per_s": b,
        "backlog_vs_empty": b / e,
        "rates": rates,
        "drained_per_round": runs,
        "queued": queued,
        "sleeping": sleeping,
        "rounds": rounds,
        "load_s": full.seconds,
        "jobs_left": counts,
        "explain": plan,
    }
