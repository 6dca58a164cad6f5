"""Commits the event loop makes itself on PostgreSQL, for a run that executes alone.

A write through the writers' queue costs two thread wake-ups (to a writer, and back to
the loop), which on a small machine cost as much as the round trip to the server. With
one run in flight there is nothing to group-commit with, so the loop runs the write on a
connection of its own and waits for the answer (bench/FINDINGS.md, "Issue 21, fifth
pass"). It is not taken from the pool: a pooled connection might not be free at once,
and the loop must never wait for one.

The loop is blocked while the server answers, which is why the connection carries a
`tcp_user_timeout` (unless the URL sets one): a server that stops answering without
closing the connection frees the loop within that time, as a lost connection does at
once. Whatever fails before COMMIT is rolled back, and the caller's write goes through
the queue instead, which retries and reports as every write does; only a connection lost
during COMMIT raises, since it may have committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict

from .postgres_pipeline import pipelined_transaction
from .tx import Tx, resolved

T = TypeVar("T")
log = logging.getLogger("stepstone.store.postgres")

TCP_USER_TIMEOUT_MS = 5000  # a silent server frees the loop after this long
NOT_DONE: tuple[bool, Any] = (False, None)
# Failures that leave nothing written: the queue's path runs the script again, with its
# retries on a fresh connection and its clear errors (a read-only server, a full disk).
_FALL_BACK = (
    psycopg.OperationalError,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.ReadOnlySqlTransaction,
    psycopg.errors.InsufficientResources,
)


class InlineCommits:
    """The loop's own connection, opened on a thread and again on one after a failure."""

    def __init__(
        self,
        conninfo: str,
        row_factory: Any,
        tx: Callable[[psycopg.Connection[Any]], Tx],
        pipelined_tx: Callable[[psycopg.Connection[Any], psycopg.Pipeline], Tx],
    ) -> None:
        self._conninfo = conninfo
        self._row_factory = row_factory
        self._tx, self._pipelined_tx = tx, pipelined_tx
        self._conn: psycopg.Connection[Any] | None = None
        self._connecting = False
        self._closed = False
        self._lock = threading.Lock()  # _conn and _connecting, between the loop and a thread
        # one write at a time on the connection: a second event loop sharing the store (a
        # rare set-up) finds it taken and queues, never interleaves with a transaction
        self._in_use = threading.Lock()

    def connect(self) -> None:
        """Opens the connection (blocking: on a thread); a failure leaves it closed, and
        writes go through the queue until a later `connect_later` succeeds."""
        options: dict[str, Any] = {"autocommit": True, "row_factory": self._row_factory}
        if "tcp_user_timeout" not in conninfo_to_dict(self._conninfo):
            options["tcp_user_timeout"] = TCP_USER_TIMEOUT_MS
        try:
            conn = psycopg.connect(self._conninfo, **options)
        except psycopg.Error:
            log.info("no connection for inline commits; writes use the queue", exc_info=True)
            conn = None
        with self._lock:
            self._connecting = False
            if self._closed and conn is not None:
                conn.close()
                return
            self._conn = conn

    def connect_later(self, executor: Executor) -> None:
        with self._lock:
            if self._conn is not None or self._connecting or self._closed:
                return
            self._connecting = True
        executor.submit(self.connect)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def run(
        self, script: Callable[[Tx], T], *, statement: bool, lazy: bool = False
    ) -> tuple[bool, T]:
        """(True, the script's result) once committed; (False, None) when the connection
        is missing or the write failed before COMMIT (rolled back): the caller queues it.
        A statement runs in autocommit mode, its own transaction; `lazy`, a transaction
        commits without waiting for the WAL's flush (pipelined_transaction)."""
        if not self._in_use.acquire(blocking=False):
            return NOT_DONE
        try:
            return self._run(script, statement=statement, lazy=lazy)
        finally:
            self._in_use.release()

    def _run(self, script: Callable[[Tx], T], *, statement: bool, lazy: bool) -> tuple[bool, T]:
        conn = self._conn
        if conn is None:
            return NOT_DONE
        if conn.closed:
            self._drop(conn)
            return NOT_DONE
        committing = False
        try:
            if statement:  # idempotent: run again through the queue if its answer is lost
                return True, resolved(script(self._tx(conn)))
            with pipelined_transaction(conn, lazy=lazy) as pipeline:
                value = resolved(script(self._pipelined_tx(conn, pipeline)))
                committing = True  # the block's end sends COMMIT
            return True, value
        except _FALL_BACK as exc:
            if conn.broken or conn.closed:
                self._drop(conn)
            if committing and isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
                raise  # lost with no answer: it may have committed, the caller decides
            return NOT_DONE
        except BaseException:
            if conn.broken or conn.closed:
                self._drop(conn)
            raise

    def _drop(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
        conn.close()
