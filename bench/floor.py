"""The floor: one INSERT committed by itself per step, same driver and durability settings
(on PostgreSQL in autocommit mode: one round trip a step, as a lone step's checkpoint is).

Nothing can checkpoint a step durably with fewer round trips or commits than this, so it
bounds what any durable-step engine on the same database can do, one step after another.

`*_idle_commit` is the floor of the latency workload: one INSERT + COMMIT after the same
idle gap as its events. An event's way to its first step holds at least one durable
commit (its own), made by a process that was idle; on a machine whose caches go cold
within milliseconds, that commit costs several times what it does in a tight loop.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from .common import latency_summary


def _sqlite(path: str) -> sqlite3.Connection:
    """A connection with the durability stepstone's store uses: WAL, synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def sqlite_sequential(path: str, steps: int, output: str | None = None) -> dict[str, Any]:
    """`output`: the text every step writes (default: its index)."""
    conn = _sqlite(path)
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS steps "
            "(id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, step TEXT NOT NULL, output TEXT)"
        )
        for i in range(5):  # warm up, as every system
            conn.execute("INSERT INTO steps (run_id, step, output) VALUES ('warm', ?, '0')", (i,))
        start = time.perf_counter()
        for i in range(steps):
            conn.execute("BEGIN")
            conn.execute(
                "INSERT INTO steps (run_id, step, output) VALUES (?, ?, ?)",
                ("run", f"s{i}", str(i) if output is None else output),
            )
            conn.execute("COMMIT")
        seconds = time.perf_counter() - start
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        conn.close()
    return _result(steps, seconds, {"journal_mode": mode, "synchronous": sync})


def postgres_sequential(url: str, steps: int, output: str | None = None) -> dict[str, Any]:
    import psycopg

    # autocommit: each INSERT is its own transaction, one round trip and one durable
    # commit (BEGIN, INSERT and COMMIT would be a round trip each: a floor one can pass)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS floor_steps "
            "(id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, step TEXT NOT NULL, output TEXT)"
        )
        sync = conn.execute("SHOW synchronous_commit").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
        for i in range(5):  # warm up, as every system
            conn.execute("INSERT INTO floor_steps (run_id, step) VALUES ('warm', %s)", (str(i),))
        start = time.perf_counter()
        for i in range(steps):
            conn.execute(
                "INSERT INTO floor_steps (run_id, step, output) VALUES (%s, %s, %s)",
                ("run", f"s{i}", str(i) if output is None else output),
            )
        seconds = time.perf_counter() - start
    settings = {
        "synchronous_commit": sync[0] if sync else None,
        "fsync": fsync[0] if fsync else None,
    }
    return _result(steps, seconds, settings)


def sqlite_idle_commit(path: str, samples: int, gap: float) -> dict[str, Any]:
    """One INSERT + COMMIT after each idle `gap`, `samples` times: its p50/p99."""
    conn = _sqlite(path)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, data TEXT)")

        def commit(i: int) -> None:
            conn.execute("BEGIN")
            conn.execute("INSERT INTO events (data) VALUES (?)", (f'{{"i":{i}}}',))
            conn.execute("COMMIT")

        return _idle_commits(commit, samples, gap)
    finally:
        conn.close()


def postgres_idle_commit(url: str, samples: int, gap: float) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # one round trip a commit
        conn.execute(
            "CREATE TABLE IF NOT EXISTS floor_events (id BIGSERIAL PRIMARY KEY, data TEXT)"
        )

        def commit(i: int) -> None:
            conn.execute("INSERT INTO floor_events (data) VALUES (%s)", (f'{{"i":{i}}}',))

        return _idle_commits(commit, samples, gap)


def _idle_commits(commit: Callable[[int], None], samples: int, gap: float) -> dict[str, Any]:
    for i in range(5):  # warm up, as every system
        commit(i)
    took: list[float] = []
    for i in range(samples):
        time.sleep(gap)
        start = time.perf_counter()
        commit(i)
        took.append(time.perf_counter() - start)
    return {"commit": latency_summary(took), "gap_s": gap, "pid": os.getpid()}


def _result(steps: int, seconds: float, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps_per_s": steps / seconds,
        "us_per_step": seconds / steps * 1e6,
        "seconds": seconds,
        "steps": steps,
        "settings": settings,
        "pid": os.getpid(),
    }
