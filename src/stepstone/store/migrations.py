"""Schema migrations: numbered .sql files per dialect, each applied once, recorded in
`schema_migrations`. The bookkeeping is the same on every database; how a dialect runs a
file and keeps concurrent starts apart (a lock) is its own."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from . import queries

log = logging.getLogger("stepstone.store")


def create_table(real: str) -> str:
    """The bookkeeping table; `real` is the dialect's floating point type."""
    return (
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        f"(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {real} NOT NULL)"
    )


def pending(dialect: str, applied: Iterable[int]) -> list[tuple[int, str, str]]:
    """(version, name, sql) of the migrations not in `applied`, in order."""
    done = set(applied)
    return [m for m in queries.migrations(dialect) if m[0] not in done]


def apply(
    dialect: str,
    applied: Iterable[int],
    run_file: Callable[[str], object],
    record: Callable[[tuple[Any, ...]], object],
) -> list[int]:
    """Apply the pending migrations through `run_file`, recording each with `record`
    (version, name, applied_at), inside the caller's transaction; their versions."""
    versions = []
    for version, name, sql in pending(dialect, applied):
        log.info("applying %s migration %04d_%s", dialect, version, name)
        run_file(sql)
        record((version, name, time.time()))
        versions.append(version)
    return versions
