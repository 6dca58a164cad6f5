"""PostgreSQL schema: numbered migrations, applied once, even when many processes start at once."""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg

from . import queries

log = logging.getLogger("stepstone.store.postgres")

# The pg_advisory_xact_lock key: an arbitrary constant that only stepstone's migrations use.
MIGRATION_LOCK = 7_351_213_201
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
)


def pending(conn: psycopg.Connection[Any]) -> list[tuple[int, str, str]]:
    """The migrations not applied yet (all of them when the schema does not exist)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    applied: set[int] = set()
    if exists and exists[0]:
        applied = {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}
    return [m for m in queries.migrations("postgres") if m[0] not in applied]


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply pending migrations in one transaction; return the versions applied.

    The transaction first takes an advisory lock, so processes that start together apply
    the migrations one at a time: the first applies them, the others wait for its commit,
    then find nothing left to do. The cheap check before it keeps every later start from
    taking the lock at all.
    """
    if not pending(conn):
        return []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(CREATE_TABLE)
        done = []
        for version, name, sql in pending(conn):
            log.info("applying PostgreSQL migration %04d_%s", version, name)
            conn.execute(sql.encode("utf-8"))  # no parameters: several statements at once
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (version, name, time.time()),
            )
            done.append(version)
    return done
