"""Plain DB-API access to a stepstone database, beside stepstone: for loading rows in bulk,
counting, and reading plans. `:name` parameters on both (psycopg's `%(name)s` made from
them as stepstone does)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


def sqlite_path(url: str) -> str:
    return url[len("sqlite:///") :].split("?", 1)[0]


def with_database(url: str, name: str) -> str:
    """The same PostgreSQL server's URL for database `name` (query string kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@contextlib.contextmanager
def connect(url: str, *, autocommit: bool = False) -> Iterator[Any]:
    """A connection, closed at the end (uncommitted work rolled back)."""
    if dialect(url) == "sqlite":
        conn: Any = sqlite3.connect(sqlite_path(url), isolation_level=None if autocommit else "")
        conn.execute("PRAGMA busy_timeout=30000")
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def run(conn: Any, sql: str, **params: Any) -> Any:
    if isinstance(conn, sqlite3.Connection):
        return conn.execute(sql, params)
    from stepstone.store import queries

    return conn.execute(queries.to_pyformat(sql), params)


def lines(conn: Any, sql: str, **params: Any) -> str:
    """The rows of a one-column result (EXPLAIN's), one a line."""
    rows = (run(conn, sql, **params) if params else conn.execute(sql)).fetchall()
    return "\n".join(str(r[0]) for r in rows)


def columns(conn: Any, table: str) -> list[str]:
    if isinstance(conn, sqlite3.Connection):
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND table_schema = current_schema() ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def scalar(url: str, sql: str, **params: Any) -> Any:
    with connect(url, autocommit=True) as conn:
        row = run(conn, sql, **params).fetchone()
    return row[0] if row else None


def count_completed(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM runs WHERE status = 'completed'"))


def job_counts(url: str) -> dict[str, int]:
    """Jobs left: never claimed (fence 0) and started (fence > 0)."""
    with connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT fence > 0, count(*) FROM jobs GROUP BY fence > 0 ORDER BY 1"
        ).fetchall()
    return {("started" if started else "queued"): int(n) for started, n in rows}
