"""Chaos: worker processes killed at random while a mixed workload runs; nothing is lost.

`make test` runs a short version; `make chaos` (STEPSTONE_CHAOS=long) a long one.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.chaos import drive
from tests.pg_cluster import PostgresCluster

LONG = os.environ.get("STEPSTONE_CHAOS") == "long"
EVENTS = 400 if LONG else 80
TIMEOUT = 600 if LONG else 150


def test_chaos_sqlite(tmp_path: Path, sqlite_url: str) -> None:
    report = asyncio.run(
        drive(sqlite_url, tmp_path, events=EVENTS, workers=3, kill_every=0.5, timeout=TIMEOUT)
    )
    print(report.line())
    assert report.kills >= 2
    assert report.violations == [], report.violations[:10]
    assert report.runs == EVENTS


def test_chaos_postgres(
    tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    report = asyncio.run(
        drive(
            postgres_url,
            tmp_path,
            events=EVENTS,
            workers=3,
            kill_every=0.5,
            timeout=TIMEOUT,
            restart_database=postgres_cluster.restart,
        )
    )
    print(report.line())
    assert report.kills >= 2 and report.restarts == 1
    assert report.violations == [], report.violations[:10]
    assert report.runs == EVENTS
