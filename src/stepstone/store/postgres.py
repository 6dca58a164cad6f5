"""The PostgreSQL store: many worker processes on many machines, one database.

It runs the same transaction scripts as the SQLite store (sql_store.py). They are plain
synchronous functions of a `Tx`, so this store runs each one on a thread of its own pool,
over a connection from a synchronous psycopg `ConnectionPool`, and the event loop awaits
the thread. Async psycopg would need the scripts written a second time as coroutines;
one thread hop per transaction costs far less than the round trips inside it, and the
pool's threads never outnumber its connections, so no thread waits for a connection.

Writes go through a queue drained by `writers` threads (2 by default), each on a pooled
connection: a thread takes every write waiting and runs them in one transaction, one
COMMIT for all (group commit, as the SQLite store does). Under load that turns a run's
checkpoint from BEGIN + statements + COMMIT into its statements alone, and wakes the
event loop once per batch. A script that fails in a batch rolls the batch back; each of
its writes is then run again in a transaction of its own, so one refused write never
undoes another (every script may run twice: none has effects outside the database).

Connections are in autocommit mode: a write runs in an explicit transaction, a read and
a lone single-statement write (a step's checkpoint) run without one (under READ
COMMITTED a transaction would give a read's statements no common snapshot anyway, and
it saves the BEGIN and COMMIT round trips).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg.rows import RowMaker, no_result
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import ConfigError, StorageError
from . import queries, redact_url, run_search
from .batching import STOP, fail_pending, settle_by_loop, take_batch
from .merges import merge_writes
from .postgres_inline import NOT_DONE, InlineCommits
from .postgres_listen import Listener
from .postgres_migrate import migrate
from .postgres_pipeline import pipelined_transaction, pipelined_tx
from .scripts.claim import ClaimScript, claim_runs_at_once
from .sql_store import SqlStore
from .tx import Tx, checking_params, resolved

T = TypeVar("T")
log = logging.getLogger("stepstone.store.postgres")

# Options read from the database URL's query string (the rest goes to libpq).
POOL_OPTIONS = {
    "pool_min_size": int,
    "pool_max_size": int,
    "pool_timeout": float,
    "writers": int,
}
# A deadlock or a dead pooled connection is retried on a fresh connection, this many times.
ATTEMPTS = 3
MAX_BATCH = 256  # writes committed together at most


class _BatchFailed(Exception):
    """A script of a batch failed: the batch is rolled back, its writes run one by one."""


_item = tuple.__getitem__


class Row(tuple[Any, ...]):
    """A row read by column name (`row["run_id"]`), as a sqlite3.Row is, or by position.

    A tuple: iterating, unpacking and comparing it cost what a tuple's do. Measured
    against psycopg's namedtuple_row (attributes, which sqlite3.Row does not have) and
    dict_row (no positions, and slower to make), a tuple with this one method reads a
    name at a fraction of a microsecond, nothing beside a statement's round trip."""

    __slots__ = ()
    columns: ClassVar[dict[str, int]] = {}  # a name's position, in each query's subclass

    def __getitem__(self, key: Any) -> Any:
        if key.__class__ is str:
            return _item(self, self.columns[key])
        return _item(self, key)


@functools.lru_cache(maxsize=1024)
def row_class(names: tuple[str, ...]) -> type[Row]:
    columns = {name: n for n, name in enumerate(names)}
    return type("Row", (Row,), {"__slots__": (), "columns": columns})


def rows_by_name(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    """psycopg's row factory for `Row`s: one class per list of column names."""
    description = cursor.description
    if description is None:
        return no_result
    return row_class(tuple(column.name for column in description))


class PostgresStore(SqlStore):
    dialect = "postgres"
    # Workers are woken by LISTEN/NOTIFY; polling only backs it up.
    poll_interval = 5.0
    name_pattern = staticmethod(run_search.like_pattern)
    claim_script = staticmethod(claim_runs_at_once)
    claim_ahead = 0.1  # a claim travels to the server and queues behind other writes
    # a prune's batch runs on a connection of its own (_write_apart) and locks only the
    # rows it deletes: no checkpoint waits for it, and larger batches cost fewer commits
    prune_budget = 0.05

    def __init__(
        self,
        conninfo: str,
        *,
        url: str | None = None,
        min_size: int = 2,
        max_size: int = 10,
        timeout: float = 10.0,
        writers: int = 2,
    ) -> None:
        if not 1 <= min_size <= max_size:
            raise ConfigError(
                f"PostgreSQL pool sizes are invalid (min {min_size}, max {max_size}): "
                "use 1 <= pool_min_size <= pool_max_size"
            )
        if not 1 <= writers < max_size:
            raise ConfigError(
                f"PostgreSQL writers={writers} is invalid with pool_max_size={max_size}: "
                "use 1 <= writers < pool_max_size (reads need connections too)"
            )
        self.writers = writers
        self._closing = False
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer_threads: list[threading.Thread] = []
        self.conninfo = conninfo
        self.url = url or conninfo
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout  # seconds to wait for a connection, e.g. while the server restarts
        self._queries = {
            name: sql.encode("utf-8") for name, sql in queries.load("postgres").items()
        }
        self._params = queries.params_to_check("postgres")  # None: not checked (production)
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._listener: Listener | None = None
        self._inline: InlineCommits | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        await asyncio.get_running_loop().run_in_executor(None, self._open_in_thread)

    def _open_in_thread(self) -> None:
        with self._lock:
            if self._pool is not None:
                return
            pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                self.conninfo,
                kwargs={"autocommit": True, "row_factory": rows_by_name},
                min_size=self.min_size,
                max_size=self.max_size,
                timeout=self.timeout,
                name="stepstone",
                open=False,
            )
            try:
                pool.open(wait=True, timeout=self.timeout)
                with pool.connection() as conn:
                    migrate(conn)
            except Exception as exc:
                pool.close()
                raise ConfigError(
                    f"cannot open the PostgreSQL database {redact_url(self.url)}: {exc}"
                ) from exc
            self._threads = ThreadPoolExecutor(
                self.max_size - self.writers, thread_name_prefix="stepstone-pg"
            )
            # connected for a worker (subscribe) or on first use: not for a process that
            # only sends or reads
            self._inline = InlineCommits(self.conninfo, rows_by_name, self._tx, self._pipelined_tx)
            self._pool = pool
            self._closing = False
            self._writer_threads = [
                threading.Thread(
                    target=self._writer_main, name=f"stepstone-pg-writer-{n}", daemon=True
                )
                for n in range(self.writers)
            ]
            for thread in self._writer_threads:
                thread.start()

    async def close(self) -> None:
        with self._lock:
            self._closing = True  # no new write is queued from now on
            writers, self._writer_threads = self._writer_threads, []
            listener, self._listener = self._listener, None
            inline, self._inline = self._inline, None
        if inline is not None:
            inline.close()
        if listener is not None:
            await listener.close()
        loop = asyncio.get_running_loop()
        for _ in writers:  # each ends after the writes queued before its stop
            self._requests.put(STOP)
        for thread in writers:
            await loop.run_in_executor(None, thread.join)
        fail_pending(self._requests, RuntimeError("the store was closed before this write"))
        with self._lock:
            pool, self._pool = self._pool, None
            threads, self._threads = self._threads, None
        if threads is not None:  # let transactions in flight end, without blocking the loop
            await loop.run_in_executor(None, threads.shutdown)
        if pool is not None:
            await loop.run_in_executor(None, pool.close)

    # -- wake-ups ------------------------------------------------------------------------
    async def subscribe(self, wake: Callable[[], None], cancel: Callable[[str], None]) -> None:
        if self._inline is not None and self._threads is not None:
            self._inline.connect_later(self._threads)  # a worker's lone runs commit inline
        if self._listener is None:
            self._listener = Listener(self.conninfo)
        await self._listener.add(wake, cancel)

    async def unsubscribe(self, wake: Callable[[], None]) -> None:
        if self._listener is not None:
            await self._listener.remove(wake)

    # -- dispatch ------------------------------------------------------------------------
    async def _write(self, script: Callable[[Tx], T]) -> T:
        return await self._enqueue(script, single=False)

    async def _write_statement(self, script: Callable[[Tx], T], *, inline: bool = False) -> T:
        if inline:
            done, value = self._commit_inline(script, statement=True)
            if done:
                return value
        return await self._enqueue(script, single=True)

    async def _write_inline(self, script: Callable[[Tx], T]) -> T:
        done, value = self._commit_inline(script, statement=False)
        return value if done else await self._enqueue(script, single=False)

    def _commit_inline(self, script: Callable[[Tx], T], *, statement: bool) -> tuple[bool, T]:
        """The write committed on the loop's own connection (postgres_inline.py) when no
        write is queued: (True, its result), else (False, None) for the queue."""
        inline, threads = self._inline, self._threads
        if inline is None or threads is None or self._closing or not self._requests.empty():
            return NOT_DONE
        lazy = isinstance(script, ClaimScript)  # as the writers commit a batch of claims
        done, value = inline.run(script, statement=statement, lazy=lazy)
        self._last_write_at = time.monotonic()
        if not done:
            inline.connect_later(threads)  # not yet, or lost: there for a later write
        return done, value

    async def _read(self, script: Callable[[Tx], T]) -> T:
        return await self._dispatch(script, transaction=False)

    async def _write_apart(self, script: Callable[[Tx], T]) -> T:
        # a transaction of its own on a pooled connection, not in a writer's batch, whose
        # checkpoints would commit only once its statements had run
        return await self._dispatch(script, transaction=True)

    async def _enqueue(self, script: Callable[[Tx], T], *, single: bool) -> T:
        if self._pool is None or self._closing:
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._requests.put((script, future, loop, single))
        return await future

    def _writer_main(self) -> None:
        while True:
            batch, stop = take_batch(self._requests, MAX_BATCH)
            if batch:
                self._last_write_at = time.monotonic()
                results = self._run_batch(batch)
                self._last_write_at = time.monotonic()
                settle_by_loop(batch, results)
            if stop:
                return

    def _run_batch(self, batch: list[Any]) -> list[tuple[bool, Any]]:
        """(ok, value or exception) for each (script, future, loop, single) request."""
        # a batch of claims alone need not wait for the disk (see ClaimScript)
        lazy = all(isinstance(script, ClaimScript) for script, *_ in batch)
        if len(batch) > 1:
            try:
                values = self._run(_all_of(batch), transaction=True, lazy=lazy)
                return [(True, value) for value in values]
            except (
                _BatchFailed,
                psycopg.errors.DeadlockDetected,
                psycopg.errors.SerializationFailure,
            ):
                pass  # one script failed or it kept deadlocking: each runs alone below
            except Exception as exc:
                # the database failed (down for longer than the pool's timeout, or the
                # connection was lost during COMMIT, which may have committed): every
                # caller decides, as for a write of its own
                return [(False, exc)] * len(batch)
        results: list[tuple[bool, Any]] = []
        for script, _future, _loop, single in batch:
            try:
                # a lone statement is atomic by itself: no BEGIN and COMMIT round trips
                results.append((True, self._run(script, transaction=not single, lazy=lazy)))
            except Exception as exc:
                results.append((False, exc))
        return results

    async def _dispatch(self, script: Callable[[Tx], T], *, transaction: bool) -> T:
        threads = self._threads
        if threads is None:
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(threads, self._run, script, transaction)

    def _run(self, script: Callable[[Tx], T], transaction: bool, *, lazy: bool = False) -> T:
        pool = self._pool
        if pool is None:
            raise RuntimeError("the store is not open")
        for attempt in range(1, ATTEMPTS + 1):
            committing = False
            try:
                with pool.connection() as conn:
                    if not transaction:
                        return resolved(script(self._tx(conn)))
                    with pipelined_transaction(conn, lazy=lazy) as pipeline:
                        result = resolved(script(self._pipelined_tx(conn, pipeline)))
                        committing = True  # the block's end sends COMMIT
                    return result
            except PoolTimeout:
                raise  # no connection within `timeout`: the server is down for longer
            except (
                psycopg.errors.ReadOnlySqlTransaction,
                psycopg.errors.InsufficientResources,  # a full disk, out of memory
            ) as exc:
                raise StorageError(
                    f"could not write to the PostgreSQL database {redact_url(self.url)}: "
                    f"{str(exc).strip()}. Check that its disk has free space and that it "
                    "accepts writes (not a read-only replica or read-only mode); nothing "
                    "already saved is affected, and the write is retried"
                ) from exc
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                # rolled back whole: running the script again is safe
                if attempt == ATTEMPTS:
                    raise
                log.info("retrying a transaction that deadlocked (attempt %d)", attempt)
            except psycopg.OperationalError as exc:
                # A connection that died in the pool (the server restarted) fails on its
                # first use, and a server shutting down refuses the statement in flight:
                # nothing was written, so retry on a live connection (the pool waits up to
                # `timeout` for the server to come back). Only a connection lost during
                # COMMIT, with no answer (no sqlstate), may have committed: the caller
                # must decide, as stepstone's caller does (the run resumes from its
                # last checkpoint after its lease ends).
                if (committing and exc.sqlstate is None) or attempt == ATTEMPTS:
                    raise
                log.info("retrying on a new connection (attempt %d)", attempt, exc_info=True)
                pool.check()  # drop every dead idle connection, not one per attempt
        raise AssertionError("unreachable")  # pragma: no cover

    def _tx(self, conn: psycopg.Connection[Any]) -> Tx:
        named = self._queries

        def run(name: str, /, **params: Any) -> psycopg.Cursor[Any]:
            return conn.execute(named[name], params)

        return run if self._params is None else checking_params(run, self._params)

    def _pipelined_tx(self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline) -> Tx:
        return pipelined_tx(conn, pipeline, self._queries, self._params)


_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def postgres_from_url(url: str) -> PostgresStore:
    """`postgresql://user:password@host:5432/db?pool_max_size=20&pool_timeout=10&sslmode=...`.

    `pool_min_size`, `pool_max_size` and `pool_timeout` (seconds to wait for a connection)
    configure the pool, `writers` how many of its connections commit batches of writes;
    every other parameter is libpq's.
    """
    if _LONE_PERCENT.search(url):
        # libpq's error would quote the text around it, the password included
        raise ConfigError(
            f"database URL {redact_url(url)!r} has a % that starts no %XX escape: "
            "write a % in a password (or anywhere in the URL) as %25"
        )
    parts = urlsplit(url)
    ours: dict[str, Any] = {}
    theirs = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in POOL_OPTIONS:
            try:
                ours[key] = POOL_OPTIONS[key](value)
            except ValueError:
                raise ConfigError(
                    f"database URL {redact_url(url)!r}: {key}={value!r} is not a number"
                ) from None
        else:
            theirs.append((key, value))
    conninfo = urlunsplit(parts._replace(query=urlencode(theirs)))
    return PostgresStore(
        conninfo,
        url=url,
        min_size=ours.get("pool_min_size", min(2, ours.get("pool_max_size", 10))),
        max_size=ours.get("pool_max_size", 10),
        timeout=ours.get("pool_timeout", 10.0),
        writers=ours.get("writers", 2),
    )


def _all_of(batch: list[Any]) -> Callable[[Tx], list[Any]]:
    """One script running every request's script, in order, in the same transaction."""

    def script(tx: Tx) -> list[Any]:
        try:
            scripts = [each for each, *_rest in batch]
            merged = merge_writes(tx, scripts)
            # every script sends its statements; then the results are read, once for all
            values = [
                merged[n] if n in merged else each(tx)
                for n, (each, _future, _loop, _single) in enumerate(batch)
            ]
            return [resolved(value) for value in values]
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            raise  # the batch is retried whole
        except psycopg.OperationalError:
            raise  # the connection failed: retried on another one
        except Exception as exc:
            raise _BatchFailed from exc

    return script
