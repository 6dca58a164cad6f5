"""PostgreSQL schema: numbered migrations, applied once, even when many processes start at once."""

from __future__ import annotations

from typing import Any

import psycopg

from . import migrations

# The pg_advisory_xact_lock key: an arbitrary constant that only stepstone's migrations use.
MIGRATION_LOCK = 7_351_213_201


def pending(conn: psycopg.Connection[Any]) -> list[tuple[int, str, str]]:
    """The migrations not applied yet (all of them when the schema does not exist)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    applied: set[int] = set()
    if exists and exists[0]:
        applied = {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")}
    return migrations.pending("postgres", applied)


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
        conn.execute(migrations.create_table("DOUBLE PRECISION"))
        applied = [int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")]
        return migrations.apply(
            "postgres",
            applied,
            # no parameters: a file's several statements go at once
            lambda sql: conn.execute(sql.encode("utf-8")),
            lambda row: conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                row,
            ),
        )
