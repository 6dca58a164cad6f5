"""Checkpoint latency during a prune (issue 18): retention deletes finished runs in small
batches, each its own short transaction, so that a prune should never hold the write lock
long enough to delay the checkpoints of the runs going on. This measures it.

The finished runs to prune are loaded by SQL, as bench/backlog.py loads its backlog: one
run of a three-step function is made through stepstone, then its rows (in `runs`,
`steps`, `history`, `run_events`, and its two events: the trigger and the run's end
announced) are copied under new ids, 100,000 a statement, shifted AGE back in time (past
the one day the prune is given). Each copy is the ten rows stepstone wrote for the run.

The checkpoints: one worker runs a steady stream of runs of STREAM_STEPS sequential steps,
one run at a time, each step's handler waiting PACE seconds before it returns (a steady
rate, not a flood that would measure the stream's own queue). A checkpoint's latency is
from a step's handler returning to the next step's handler starting: the step's
checkpoint is committed in between, with the executor's bookkeeping (a fraction of a
millisecond, the same in every phase).

The phases, on one database and one worker: the stream alone for `baseline` seconds, then
`app.prune("1d")` in the worker's own process (the engine's batched pruning on the
worker's store, as a worker's retention runs it) with the stream going on; the stream
stops, the copies are loaded again, the stream alone again, then the same prune from
another process (bench/pruner.py: App.prune on connections of its own, the code path of
`stepstone prune`). A prune phase's checkpoints are those that began while the prune ran,
from its first batch to its last (the other process reports when, on CLOCK_MONOTONIC,
which Linux shares between processes). The rows deleted are counted by SQL before and
after: those of runs that ended before the cut-off, and the events received before it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import stepstone

from . import sqlconn
from .common import latency_summary
from .stepstone_runner import ROOT

CHUNK = 100_000
AGE = 8 * 86400.0  # the copies ended this long before their template: past the prune's day
OLDER_THAN = "1d"
TEMPLATE_STEPS = 3
STREAM_STEPS = 500  # steps per run of the stream (a run holds at most 1,000)
PACE = 0.002  # seconds a stream step's handler waits before it returns
# the tables a finished run has rows in, with its run id column; its events apart
RUN_TABLES = [("runs", "id"), ("steps", "run_id"), ("history", "run_id")]
RUN_TABLES.append(("run_events", "run_id"))
TIMES = {"created_at", "started_at", "ended_at", "received_at", "at", "wake_at"}


class Stream:
    """The stream of sequential checkpoints, and each one's latency with when it began."""

    def __init__(self, app: stepstone.App) -> None:
        self.app = app
        self.samples: list[tuple[float, float]] = []  # (checkpoint began, seconds)
        self._returned: float | None = None
        self._stop = False
        self._done: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

        @app.function(id="stream", trigger="bench/stream")
        async def stream(ctx: stepstone.Context) -> None:
            self._returned = None  # the first step of a run follows no checkpoint
            for i in range(STREAM_STEPS):
                await ctx.step.run(f"s{i}", self._step)
                if self._stop:
                    break
            if self._done is not None and not self._done.done():
                self._done.set_result(None)

    async def _step(self) -> None:
        began = time.monotonic()
        if self._returned is not None:
            self.samples.append((self._returned, began - self._returned))
        await asyncio.sleep(PACE)
        self._returned = time.monotonic()

    async def _send_runs(self) -> None:
        while not self._stop:
            self._done = asyncio.get_running_loop().create_future()
            await self.app.send({"name": "bench/stream"})
            await asyncio.wait_for(self._done, timeout=120)

    async def start(self) -> None:
        self._stop = False
        count = len(self.samples)
        self._task = asyncio.create_task(self._send_runs())
        while len(self.samples) < count + 10:  # going: the worker has it in hand
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._stop = True
        if self._task is not None:
            await self._task

    def between(self, start: float, end: float) -> list[float]:
        return [seconds for began, seconds in self.samples if start <= began <= end]


def define_template(app: stepstone.App) -> None:
    """The function of the template run: TEMPLATE_STEPS steps."""

    @app.function(id="order", trigger="bench/order")
    async def order(ctx: stepstone.Context) -> dict[str, int]:
        for i in range(TEMPLATE_STEPS):
            await ctx.step.run(f"step-{i}", lambda: {"sku": 1234, "qty": 2})
        return {"shipped": TEMPLATE_STEPS}


async def template(app: stepstone.App) -> tuple[str, list[str], str]:
    """A finished run of the template function, in a database holding nothing else: its
    id, the ids of its events (the trigger first), and the trigger's."""
    [trigger] = await app.send({"name": "bench/order", "data": {"order": 1}})
    [run] = await app.runs_for_event(trigger)
    await app.wait_for_run(run.id, timeout=60)
    with sqlconn.connect(app.database_url, autocommit=True) as conn:
        events = [row[0] for row in conn.execute("SELECT id FROM events ORDER BY id")]
    return run.id, [trigger] + [e for e in events if e != trigger], trigger


class FinishedRuns:
    """Copies the template run's rows under new ids (its id's first 16 characters and a
    10-digit number; an event's id with `-` and the number), AGE earlier."""

    def __init__(self, url: str, run_id: str, events: list[str], trigger: str) -> None:
        self.url, self.run_id, self.events, self.trigger = url, run_id, events, trigger
        self.dialect = sqlconn.dialect(url)
        self.next = 0  # copy numbers are unique across loads
        self.seconds = 0.0

    def load(self, count: int) -> None:
        start = time.perf_counter()
        with sqlconn.connect(self.url) as conn:
            if self.dialect == "sqlite":
                conn.execute("PRAGMA synchronous=OFF")  # setup, not the workload
            else:
                conn.execute("SET synchronous_commit = off")
            statements = [(self._statement(conn, t, c), self.run_id) for t, c in RUN_TABLES]
            statements += [(self._statement(conn, "events", "id"), e) for e in self.events]
            for first in range(self.next, self.next + count, CHUNK):
                last = min(first + CHUNK, self.next + count) - 1
                for sql, template in statements:
                    sqlconn.run(
                        conn, sql, first=first, last=last, t=template, age=AGE, trigger=self.trigger
                    )
                conn.commit()
        self.next += count
        self.seconds += time.perf_counter() - start
        self._settle()

    def _statement(self, conn: Any, table: str, key: str) -> str:
        """INSERT ... SELECT of the copies of the template's row in `table` (`key`: the
        column naming the template, `:t`), numbered :first to :last."""
        sqlite = self.dialect == "sqlite"
        number = "printf('%010d', n.i)" if sqlite else "lpad(n.i::text, 10, '0')"
        event_columns = {("events", "id"), ("run_events", "event_id")}
        exprs = []
        columns = [c for c in sqlconn.columns(conn, table) if (table, c) != ("history", "seq")]
        for c in columns:
            if (table, c) in event_columns:
                exprs.append(f"t.{c} || '-' || {number}")
            elif c == key:  # a run id
                exprs.append(f"substr(t.{c}, 1, 16) || {number}")
            elif (table, c) == ("runs", "event_ids"):
                exprs.append(f"'[\"' || CAST(:trigger AS TEXT) || '-' || {number} || '\"]'")
            elif c in TIMES:  # in time order after one another, AGE before the template
                exprs.append(f"t.{c} - :age + n.i * 0.000001")
            else:
                exprs.append(f"t.{c}")
        if sqlite:
            series = (
                "(WITH RECURSIVE s(i) AS (SELECT :first UNION ALL "
                "SELECT i + 1 FROM s WHERE i < :last) SELECT i FROM s) AS n"
            )
        else:
            series = "generate_series(:first::bigint, :last::bigint) AS n(i)"
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)} "
            f"FROM {table} AS t, {series} WHERE t.{key} = :t"
        )

    def _settle(self) -> None:
        """The load's WAL written into the file (SQLite), or VACUUM ANALYZE as autovacuum
        would soon after a bulk load (PostgreSQL): neither in the middle of a phase."""
        with sqlconn.connect(self.url, autocommit=True) as conn:
            if self.dialect == "sqlite":
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                for table, _ in [*RUN_TABLES, ("events", "id")]:
                    conn.execute(f"VACUUM ANALYZE {table}")


def old_rows(url: str, cut: float) -> dict[str, int]:
    """The rows of runs that ended before `cut`, and the events received before it."""
    of_old = "run_id IN (SELECT id FROM runs WHERE ended_at < :cut)"
    queries = {
        "runs": "SELECT count(*) FROM runs WHERE ended_at < :cut",
        "events": "SELECT count(*) FROM events WHERE received_at < :cut",
        **{t: f"SELECT count(*) FROM {t} WHERE {of_old}" for t, _ in RUN_TABLES[1:]},
    }
    with sqlconn.connect(url, autocommit=True) as conn:
        return {t: int(sqlconn.run(conn, sql, cut=cut).fetchone()[0]) for t, sql in queries.items()}


def _deleted(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: before[t] - after[t] for t in before}


async def _other_process(url: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.pruner",
        url,
        OLDER_THAN,
        stdout=asyncio.subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench.pruner exited {proc.returncode}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


async def _phase(
    stream: Stream, loader: FinishedRuns, runs: int, baseline: float, prune: Any
) -> tuple[list[float], dict[str, Any]]:
    """The copies loaded, the stream alone for `baseline` s, then `prune()` (which answers
    when it ran, on time.monotonic, and what it deleted) with the stream going on."""
    await asyncio.to_thread(loader.load, runs)
    cut = time.time() - 86400.0
    before = await asyncio.to_thread(old_rows, loader.url, cut)
    await stream.start()
    began = time.monotonic()
    await asyncio.sleep(baseline)
    done = await prune()
    await asyncio.sleep(0.2)  # the checkpoints that began during the prune, ended
    await stream.stop()
    after = await asyncio.to_thread(old_rows, loader.url, cut)
    alone = stream.between(began, done["start"])
    during = stream.between(done["start"], done["end"])
    deleted = _deleted(before, after)
    result = {
        "checkpoints": latency_summary(during),
        "alone": latency_summary(alone),
        "prune_s": done["end"] - done["start"],
        "runs_deleted": done["runs"],
        "events_deleted": done["events"],
        "rows_deleted": sum(deleted.values()),
        "rows_deleted_by_table": deleted,
        "old_rows_left": sum(after.values()),
    }
    return alone, result


async def prune_latency(url: str, runs: int, baseline: float) -> dict[str, Any]:
    # retention 0 and no prune loop: only the phases prune
    app = stepstone.App("bench", database=url, retention=0)
    stream = Stream(app)
    define_template(app)
    try:
        async with app.worker(prune_interval=0):
            loader = FinishedRuns(url, *await template(app))

            async def in_process() -> dict[str, Any]:
                start = time.monotonic()
                done = await app.prune(OLDER_THAN)
                end = time.monotonic()
                return {"start": start, "end": end, "runs": done.runs, "events": done.events}

            alone_1, worker = await _phase(stream, loader, runs, baseline, in_process)
            alone_2, other = await _phase(
                stream, loader, runs, baseline, lambda: _other_process(url)
            )
    finally:
        await app.close()
    alone = latency_summary(alone_1 + alone_2)
    for phase in (worker, other):  # against both phases' stream alone: more samples
        phase["p99_vs_alone"] = phase["checkpoints"]["p99_ms"] / alone["p99_ms"]
    return {
        "alone": alone,
        "worker": worker,
        "other_process": other,
        "runs": runs,
        "rows_per_run": worker["rows_deleted"] / max(1, worker["runs_deleted"]),
        "baseline_s": baseline,
        "pace_s": PACE,
        "load_s": loader.seconds,
    }
