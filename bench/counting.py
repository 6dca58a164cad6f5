"""Database work counted, not timed: statements, commits, rows written and WAL bytes.

SQLite (`SqliteCounter`, in the process that runs the system): while installed, every
`sqlite3.connect` of this process returns a connection that reports each statement it
executes (`set_trace_callback`: one call per statement run, the implicit BEGIN and the
COMMIT included), whose rows written are read from `total_changes` (rows inserted,
updated or deleted, triggers included), and whose automatic checkpoints are off
(`wal_autocheckpoint=0`). A monitor connection holds the file open, so no closing
connection checkpoints the WAL either: it only grows, and its growth is the bytes
written to it (whole pages, each frame a 4 KiB page and a 24-byte header).

PostgreSQL (`PgCounter`, from outside): the server's own counters for the database,
read when no client is connected to it (a backend flushes its counters as it exits):
`pg_stat_database` (commits, rows inserted/updated/deleted), `pg_stat_statements` where
the server preloads it (statements executed), and for the cluster, which runs nothing
else meanwhile, the WAL position `pg_current_wal_lsn()` and `pg_stat_wal` (records,
full-page images). A CHECKPOINT first, so that full-page images count the same for
every system: each page's first change after a checkpoint logs the whole page. Beside
them, measured rather than counted, the server's CPU time (bench/cpu.py: /proc).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from typing import Any

from . import sqlconn
from .cpu import ServerCpu

_KINDS = {
    "SELECT": "reads",
    "VALUES": "reads",
    "INSERT": "writes",
    "UPDATE": "writes",
    "DELETE": "writes",
    "REPLACE": "writes",
    "BEGIN": "begin",
    "COMMIT": "commit",
    "END": "commit",
    "ROLLBACK": "rollback",
    "SAVEPOINT": "savepoints",
    "RELEASE": "savepoints",
    "PRAGMA": "pragmas",
}
_COMMENTS = re.compile(r"^(\s*(--[^\n]*(\n|$)|/\*.*?\*/))*", re.DOTALL)  # leading ones
_WRITE = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


class _Counted(sqlite3.Connection):
    """A connection that remembers its rows written when it is closed."""

    final_changes: int | None = None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.final_changes = self.total_changes
        super().close()

    def changes_so_far(self) -> int:
        if self.final_changes is not None:
            return self.final_changes
        try:
            return self.total_changes
        except sqlite3.Error:
            return 0


class SqliteCounter:
    def __init__(self, path: str) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._conns: list[_Counted] = []
        self._real = sqlite3.connect
        self._monitor: sqlite3.Connection | None = None

    def __enter__(self) -> SqliteCounter:
        self._monitor = self._real(self.path, isolation_level=None)
        self._monitor.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the WAL
        sqlite3.connect = sqlite3.dbapi2.connect = self._connect  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        sqlite3.connect = sqlite3.dbapi2.connect = self._real
        if self._monitor is not None:
            self._monitor.close()

    def _connect(self, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs["check_same_thread"] = False  # rows written are read from this thread
        kwargs.setdefault("factory", _Counted)
        conn = self._real(*args, **kwargs)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        if isinstance(conn, _Counted):
            with self._lock:
                self._conns.append(conn)
        conn.set_trace_callback(self._tracer())
        return conn

    def _tracer(self) -> Any:
        in_tx = [False]  # this connection's: inside BEGIN ... COMMIT

        def trace(sql: str) -> None:
            words = _COMMENTS.sub("", sql).split(None, 1)
            word = words[0].rstrip(";").upper() if words else ""
            kind = _KINDS.get(word, "other")
            if word == "WITH":
                kind = "writes" if _WRITE.search(sql) else "reads"
            with self._lock:
                self.counts[kind] += 1
                if kind == "begin":
                    in_tx[0] = True
                elif kind in ("commit", "rollback"):
                    in_tx[0] = False
                    self.counts["commits"] += kind == "commit"
                elif kind == "writes" and not in_tx[0]:
                    self.counts["commits"] += 1  # a write in autocommit commits alone

        return trace

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            counts = dict(self.counts)
            conns = list(self._conns)
        wal = self.path + "-wal"
        out = {k: float(counts.get(k, 0)) for k in (*set(_KINDS.values()), "other", "commits")}
        out["statements"] = float(sum(v for k, v in counts.items() if k not in ("commits",)))
        out["statements_without_pragmas"] = out["statements"] - out["pragmas"]
        out["rows_written"] = float(sum(c.changes_so_far() for c in conns))
        out["wal_bytes"] = float(os.path.getsize(wal) if os.path.exists(wal) else 0)
        return out


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


class PgCounter:
    def __init__(self, url: str) -> None:
        self.db = sqlconn.database_name(url)
        self.admin = sqlconn.with_database(url, "postgres")
        self.statements = True
        self.quiesced = True
        self.server = ServerCpu(self.admin)

    def __enter__(self) -> PgCounter:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT count(*) FROM pg_stat_statements").fetchall()
            except psycopg.Error:  # not preloaded: statements are not counted
                self.statements = False
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _read(self, conn: Any) -> dict[str, float]:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = %s",
            (self.db,),
        ).fetchone()
        names = ("commits", "rollbacks", "inserted", "updated", "deleted")
        out = dict(zip(names, map(float, row), strict=True))
        out["rows_written"] = out["inserted"] + out["updated"] + out["deleted"]
        if self.statements:
            calls = conn.execute(
                "SELECT coalesce(sum(calls), 0), coalesce(sum(calls) FILTER (WHERE "
                "upper(split_part(ltrim(query), ' ', 1)) IN ('BEGIN', 'COMMIT', 'ROLLBACK')), 0) "
                "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
                "WHERE datname = %s)",
                (self.db,),
            ).fetchone()
            out["statements"] = float(calls[0])
            out["statements_without_begin_commit"] = float(calls[0] - calls[1])
        return out

    def snapshot(self, checkpoint: bool = False) -> dict[str, float]:
        """The counters once no client is connected to the database and they are still."""
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            deadline = time.monotonic() + 15
            while conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND backend_type = 'client backend'",
                (self.db,),
            ).fetchone()[0]:
                if time.monotonic() > deadline:
                    self.quiesced = False
                    break
                time.sleep(0.05)
            last = self._read(conn)
            for _ in range(20):  # an exiting backend flushes its counters as it goes
                time.sleep(0.2)
                now = self._read(conn)
                if now == last:
                    break
                last = now
            if checkpoint:
                conn.execute("CHECKPOINT")
            lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            wal = conn.execute("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal").fetchone()
        last["wal_bytes"] = float(_lsn(lsn))
        cpu = self.server.seconds()  # measured, not counted: the server's CPU time
        if cpu is not None:
            last["server_cpu_us"] = cpu * 1e6
        last["wal_records"], last["wal_fpi"], last["wal_bytes_stat"] = map(float, wal)
        return last


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}
