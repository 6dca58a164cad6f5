"""A write transaction in psycopg's pipeline mode, with one Sync for the whole of it.

psycopg's `conn.transaction()` inside a pipeline syncs before it sends COMMIT (its block
is a nested pipeline, and leaving one waits for every result sent in it), so BEGIN,
the writes and COMMIT cost two round trips where one carries them all. Here BEGIN and
COMMIT are plain statements of the pipeline: the writes a script never reads travel
with COMMIT, and the server's answers to all of them come back once, when the pipeline
ends (bench/FINDINGS.md, "Issue 21, sixth pass").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from .tx import Tx, checking_params


@contextmanager
def pipelined_transaction(
    conn: psycopg.Connection[Any], *, lazy: bool = False
) -> Iterator[psycopg.Pipeline]:
    """BEGIN on entry, COMMIT when the block ends, sent with the block's last statements;
    an error anywhere (the server's, read at a sync or at the end, or the script's own)
    rolls the transaction back before it propagates, so the connection is left idle.
    `lazy` commits without waiting for the WAL's flush (`synchronous_commit = off`)."""
    try:
        with conn.pipeline() as pipeline:
            conn.execute("BEGIN")
            if lazy:
                conn.execute("SET LOCAL synchronous_commit = off")
            yield pipeline
            conn.execute("COMMIT")
    except BaseException:
        # after the pipeline: within it, a failed transaction skips every command up to
        # the next Sync, a ROLLBACK included
        if not conn.closed and conn.info.transaction_status is not TransactionStatus.IDLE:
            with suppress(psycopg.Error):  # lost: the server rolled back already
                conn.rollback()
        raise


def pipelined_tx(
    conn: psycopg.Connection[Any],
    pipeline: psycopg.Pipeline,
    queries: Mapping[str, bytes],
    params: Mapping[str, frozenset[str]] | None,
) -> Tx:
    """Statements are sent without waiting for their results; reading a result waits
    for everything sent before it. A script's writes whose results it never reads (an
    insert into the history, a delete) then cost no round trip of their own: they
    travel with COMMIT."""
    sent = [0, 0]  # statements sent, statements whose results have arrived

    def sync(seq: int) -> None:
        if seq > sent[1]:
            pipeline.sync()
            sent[1] = sent[0]

    def run(name: str, /, **values: Any) -> PipelinedCursor:
        sent[0] += 1
        return PipelinedCursor(conn.execute(queries[name], values), sync, sent[0])

    return run if params is None else checking_params(run, params)


class PipelinedCursor:
    """A statement's cursor in pipeline mode: its result is awaited when first read."""

    __slots__ = ("_cursor", "_seq", "_sync")

    def __init__(self, cursor: psycopg.Cursor[Any], sync: Callable[[int], None], seq: int) -> None:
        self._cursor, self._sync, self._seq = cursor, sync, seq

    @property
    def rowcount(self) -> int:
        self._sync(self._seq)
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        self._sync(self._seq)
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        self._sync(self._seq)
        return self._cursor.fetchall()
