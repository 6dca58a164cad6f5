"""Workload 8: database work per step, counted (bench/counting.py), for stepstone and for
DBOS on the same workload: the concurrent one (runs of `concurrent_steps` steps sent at
once, one worker process).

Each system runs three times on one database: once to create its tables (not counted),
once starting up and running its warm-up run alone (5 steps), and once starting up,
warming up and running the workload. The work per step is the third's counts minus the
second's, over the workload's steps, so start-up and warm-up are not in it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import stepstone

from . import counting, sqlconn, stepstone_runner

COUNTED = ["statements", "commits", "rows_written", "wal_bytes"]


async def _stepstone_once(url: str, runs: int, steps: int) -> None:
    app = stepstone.App("bench", database=url)
    tally = stepstone_runner._Returned()
    stepstone_runner.define_step_loop(app, "concurrent", steps, tally.returned)
    try:
        async with app.worker(concurrency=100):
            await stepstone_runner._warm_up(app, "bench/concurrent")
            if runs:
                returned = tally.arm(runs)
                await stepstone_runner._send_many(app, "bench/concurrent", runs)
                await asyncio.wait_for(returned, timeout=600)
                await stepstone_runner._wait_all_ended(app, every=0.01)
    finally:
        await app.close()


def _dbos_once(url: str, runs: int, steps: int) -> None:
    from .dbos_runner import DbosBench

    bench = DbosBench(url, queue=False)
    try:
        if runs:
            bench.concurrent(runs, steps)
    finally:
        bench.close()


def _stepstone(url: str, runs: int, steps: int) -> None:
    asyncio.run(_stepstone_once(url, runs, steps))


def count(system: str, url: str, runs: int, steps: int) -> dict[str, Any]:
    """Runs the three phases (blocking: DBOS runs its own threads) and returns the counts."""
    once: Callable[[str, int, int], None] = _dbos_once if system == "dbos" else _stepstone
    once(url, 0, steps)  # tables created: not counted
    sqlite = sqlconn.dialect(url) == "sqlite"
    counter: Any = (
        counting.SqliteCounter(sqlconn.sqlite_path(url)) if sqlite else counting.PgCounter(url)
    )
    with counter:
        start = counter.snapshot() if sqlite else counter.snapshot(checkpoint=True)
        once(url, 0, steps)
        idle = counting.diff(counter.snapshot(), start)
        start = counter.snapshot() if sqlite else counter.snapshot(checkpoint=True)
        once(url, runs, steps)
        full = counting.diff(counter.snapshot(), start)
    total = runs * steps
    net = {k: full[k] - idle.get(k, 0.0) for k in full}
    out: dict[str, Any] = {
        "per_step": {k: v / total for k, v in net.items()},
        "net": net,
        "startup_and_warm_up": idle,
        "runs": runs,
        "steps_per_run": steps,
        "steps": total,
        "method": counting.__doc__,
    }
    if not sqlite:
        out["statements_counted"] = counter.statements
        out["quiesced"] = counter.quiesced
    return out


async def dbwork(system: str, url: str, runs: int, steps: int) -> dict[str, Any]:
    return await asyncio.to_thread(count, system, url, runs, steps)
