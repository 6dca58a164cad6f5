"""The SQLite store: one file, many processes, WAL, a durable commit per checkpoint.

All writes of a process go through one writer thread with its own connection. The
thread takes every request waiting in its queue and commits them together (each in
a savepoint, so one refused write does not undo the others): under load, many runs'
checkpoints share one fsync, and each caller still resumes only once its write is
durable. Reads use separate connections, which WAL lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError, StorageError
from . import migrations, queries
from .base import Pruned
from .batching import STOP, fail_pending, settle_by_loop, take_batch
from .filewatch import FileWatch, watch_writes
from .merges import merge_writes
from .scripts.checkpoints import StepSave
from .scripts.claim import ClaimScript
from .scripts.run_end import RunEnd
from .sql_store import SqlStore
from .sqlite_probe import data_version_probe
from .sqlite_space import give_space_back
from .tx import Many, Tx, checking_params, resolved

# a `Many` parameter reaches SQLite as JSON text, which the queries read with json_each
sqlite3.register_adapter(Many, json.dumps)

T = TypeVar("T")
log = logging.getLogger("stepstone.store")
READER_CACHE_KIB = 512
# the writer's page cache: SQLite's default is 2 MiB. Its statements touch the pages of
# the rows they write and the indexes above them, and a page it misses is a read from the
# OS's cache of the file; half the default took ~1 MB off a worker's memory once its
# database had grown, at no cost seen in the drain rate of a 1,000,000-run backlog
# (bench/FINDINGS.md, "Issue 21, eighth pass")
WRITER_CACHE_KIB = 1024
SYNCHRONOUS = ("off", "normal", "full", "extra")
MAX_BATCH = 512


def _split_statements(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not current.strip():
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


class SQLiteStore(SqlStore):
    dialect = "sqlite"

    def __init__(
        self,
        path: str | None,
        *,
        synchronous: str = "full",
        busy_timeout: float = 30.0,
        url: str | None = None,
    ) -> None:
        if synchronous.lower() not in SYNCHRONOUS:
            raise ConfigError(
                f"sqlite synchronous={synchronous!r} is invalid: "
                f"use one of {', '.join(SYNCHRONOUS)}"
            )
        self.path = path  # None: an in-memory database, private to this store
        self.url = url or (f"sqlite:///{path}" if path else "memory://")
        self.synchronous = synchronous.lower()
        self.busy_timeout = busy_timeout
        self._queries = queries.load("sqlite")
        self._params = queries.params_to_check("sqlite")  # None: not checked (production)
        self._returning = {
            name for name, sql in self._queries.items() if re.search(r"\bRETURNING\b", sql, re.I)
        }
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._lock = threading.Lock()
        self._opened = False
        self._probes: list[sqlite3.Connection] = []
        self._watches: list[FileWatch] = []
        self._batch_lock = threading.Lock()  # one transaction at a time on the writer's
        self._writer_conn: sqlite3.Connection | None = None
        self._inline_conn: sqlite3.Connection | None = None  # see _commit_inline
        self._inline_lazy = False  # whether it commits without the fsync now (a claim's)
        self._own_changes = 0  # commits by this process's writer that changed rows
        # a batch of claims alone commits without the WAL's fsync (see ClaimScript): the
        # next durable commit, a checkpoint under the lease, syncs the WAL up to it first
        self._lazy_claims = bool(path) and self.synchronous in ("full", "extra")
        self._writer_lazy = False  # whether the writer's connection commits so now

    # -- lifecycle -------------------------------------------------------------------
    async def open(self) -> None:
        with self._lock:
            if self._opened:
                return
            self._opened = True
            if self.path:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer = threading.Thread(
                target=self._writer_main, name="stepstone-sqlite-writer", daemon=True
            )
            self._writer.start()
        await asyncio.get_running_loop().run_in_executor(None, self._ready.wait)
        if self._open_error is not None:
            error = self._open_error
            self._opened = False
            if isinstance(error, sqlite3.Error):
                raise self._storage_error(error) from error
            raise error
        if self.path:
            self._readers = ThreadPoolExecutor(2, thread_name_prefix="stepstone-sqlite-reader")

    async def close(self) -> None:
        with self._lock:
            if not self._opened:
                return
            self._opened = False
            writer, self._writer = self._writer, None
        self._requests.put(STOP)
        if writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, writer.join)
        fail_pending(self._requests, RuntimeError("the store was closed before this write"))
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        with self._batch_lock:
            self._drop_inline_connection()
        probes, self._probes = self._probes, []
        for conn in probes:
            conn.close()
        watches, self._watches = self._watches, []
        for watch in watches:
            watch.close()
        self._ready.clear()

    def _connect(
        self, *, readonly: bool = False, cache_kib: int | None = None
    ) -> sqlite3.Connection:
        """A connection to the file; `cache_kib`: its page cache (readers: READER_CACHE_KIB,
        else SQLite's default)."""
        conn = sqlite3.connect(
            self.path or ":memory:",
            isolation_level=None,
            timeout=self.busy_timeout,
            check_same_thread=False,  # the writer's is shared under _batch_lock
        )
        conn.row_factory = sqlite3.Row  # rows read by column name, or by position
        if self.path:
            if not readonly and not os.path.getsize(self.path):
                # a new file: the space that prunes free goes back (_give_space_back)
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        if readonly:
            conn.execute("PRAGMA query_only=1")
            # reads are point lookups and short pages of runs: a small cache is enough
            # (the OS caches the file), where SQLite's default of 2 MiB per connection
            # grew every process's memory by up to 4 MiB as the database grew
            cache_kib = READER_CACHE_KIB
        if cache_kib is not None:
            conn.execute(f"PRAGMA cache_size=-{cache_kib}")
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        wanted = {version for version, _, _ in queries.migrations("sqlite")}
        try:
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        except sqlite3.OperationalError:
            applied = set()
        if wanted <= applied:
            return  # up to date: no write needed (a read-only file still opens for reading)
        conn.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait for it
        try:
            conn.execute(migrations.create_table("REAL"))
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            migrations.apply(
                "sqlite",
                applied,
                lambda sql: [conn.execute(each) for each in _split_statements(sql)],
                lambda row: conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    row,
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- the writer thread ------------------------------------------------------------------
    def _writer_main(self) -> None:
        try:
            conn = self._connect(cache_kib=WRITER_CACHE_KIB)
            self._migrate(conn)
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._local.conn = conn
        self._writer_conn = conn
        self._ready.set()
        tx = self._tx(conn)
        try:
            while True:
                batch, stop = take_batch(self._requests, MAX_BATCH)
                if batch:
                    with self._batch_lock:
                        self._last_write_at = time.monotonic()
                        healthy, results = self._run_batch(conn, tx, batch)
                        self._last_write_at = time.monotonic()
                        if not healthy:
                            conn, tx = self._reconnect(conn, tx)
                    # settled once the lock is free: a caller woken by it may commit its
                    # next write inline at once (else it would find the lock held, and queue)
                    settle_by_loop(batch, results)  # one wake-up per event loop
                if stop:
                    return
        finally:
            with self._batch_lock:  # no inline commit may be running on it
                self._writer_conn = None
                conn.close()

    def _run_batch(
        self, conn: sqlite3.Connection, tx: Tx, batch: list[Any]
    ) -> tuple[bool, list[tuple[bool, Any]]]:
        """Run and commit a batch: (False if the connection failed, each caller's (ok,
        value or exception))."""
        changes_before = conn.total_changes
        lazy = self._lazy_claims and all(isinstance(script, ClaimScript) for script, *_ in batch)
        try:
            if lazy is not self._writer_lazy:
                # set before the batch, not restored after it: an error here fails this
                # batch, and the connection is replaced before anything commits lazily
                self._writer_lazy = True  # unknown until the pragma is known to be set
                conn.execute(f"PRAGMA synchronous={'normal' if lazy else self.synchronous}")
                self._writer_lazy = lazy
            results = self._apply(conn, tx, batch)
            healthy = True
        except BaseException as exc:
            # BEGIN, COMMIT or a rollback failed (a full disk, an I/O error, a lock held too
            # long): nothing of the batch is saved, and every caller is told why
            _roll_back(conn)
            error = self._storage_error(exc) if isinstance(exc, sqlite3.Error) else exc
            results = [(False, error)] * len(batch)
            healthy = False
        if conn.total_changes != changes_before:
            self._own_changes += 1
        return healthy, results

    def _apply(self, conn: sqlite3.Connection, tx: Tx, batch: list[Any]) -> list[tuple[bool, Any]]:
        conn.execute("BEGIN IMMEDIATE")
        single = len(batch) == 1
        merged = {} if single else _merged(conn, tx, batch)
        results: list[tuple[bool, Any]] = []
        for n, (script, _future, _loop) in enumerate(batch):
            if n in merged:
                results.append((True, merged[n]))
                continue
            if not single:
                conn.execute("SAVEPOINT request")
            try:
                value = resolved(script(tx))
            except sqlite3.OperationalError:
                raise  # the database itself failed (read-only, full, I/O): the whole batch fails
            except Exception as error:
                if single:
                    conn.execute("ROLLBACK")
                    return [(False, error)]
                conn.execute("ROLLBACK TO request")
                conn.execute("RELEASE request")
                results.append((False, error))
                continue
            if not single:
                conn.execute("RELEASE request")
            results.append((True, value))
        conn.execute("COMMIT")
        return results

    def _storage_error(self, exc: sqlite3.Error) -> StorageError:
        where = self.path or "memory"
        error = StorageError(
            f"could not write to the SQLite database {where}: {exc}. Check that its disk has "
            "free space and that the file and its folder are writable; nothing already "
            "saved is affected, and the write is retried"
        )
        error.__cause__ = exc
        return error

    def _reconnect(self, conn: sqlite3.Connection, tx: Tx) -> tuple[sqlite3.Connection, Tx]:
        """A fresh connection after a failed transaction; the old one if none can be had."""
        if self.path is None:
            return conn, tx  # a new connection to :memory: would be a new, empty database
        try:
            fresh = self._connect(cache_kib=WRITER_CACHE_KIB)
        except sqlite3.Error:
            return conn, tx
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        self._local.conn = fresh
        self._writer_conn = fresh
        self._writer_lazy = False  # a new connection has the store's synchronous setting
        return fresh, self._tx(fresh)

    def _tx(self, conn: sqlite3.Connection) -> Tx:
        named = self._queries
        returning = self._returning

        def run(name: str, /, **params: Any) -> sqlite3.Cursor | _Rows:
            cursor = conn.execute(named[name], params)
            if name in returning:
                # a DML statement with rows unread stays in progress, and SQLite then
                # refuses to COMMIT (this or any later transaction): read them now
                return _Rows(cursor.fetchall(), cursor.rowcount)
            return cursor

        return run if self._params is None else checking_params(run, self._params)

    def change_probe(self) -> Callable[[], bool] | None:
        """Whether another process committed since last asked (sqlite_probe.py), on a
        read-only connection of the probe's own."""
        if not self.path:
            return None
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=self.busy_timeout, check_same_thread=False
        )
        conn.execute("PRAGMA query_only=1")
        self._probes.append(conn)
        return data_version_probe(conn, lambda: self._own_changes)

    def change_watch(self) -> FileWatch | None:
        """Writes to the WAL file: every commit, by any process, writes it first (it exists
        while a connection is open, and this store keeps its writer's open)."""
        if not self.path or not self._opened:
            return None
        watch = watch_writes(self.path + "-wal")
        if watch is not None:
            watch.writing_here = self._writing
            self._watches.append(watch)
        return watch

    def _writing(self) -> bool:
        """Whether this process's writer (or an inline commit) is at work or has work."""
        return self._batch_lock.locked() or not self._requests.empty()

    # -- dispatch ------------------------------------------------------------------------
    async def _write(self, script: Callable[[Tx], T]) -> T:
        if not self._opened:
            raise RuntimeError("the store is not open")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._requests.put((script, future, loop))
        return await future

    async def _write_inline(self, script: Callable[[Tx], T]) -> T:
        done, value = self._commit_inline(script, statement=False)
        return value if done else await self._write(script)

    async def _write_statement(self, script: Callable[[Tx], T], *, inline: bool = False) -> T:
        if inline:
            done, value = self._commit_inline(script, statement=True)
            if done:
                return value
        return await self._write(script)

    def _commit_inline(self, script: Callable[[Tx], T], *, statement: bool) -> tuple[bool, T]:
        """Commit on the caller's thread when the writer is idle and nothing is queued:
        (True, the script's result), or (False, None) for the caller to use the queue.

        For a run that executes alone: the two thread wake-ups of the queue (to the writer
        and back) cost about as much as the SQL, and there is nothing to group-commit
        with. The event loop waits for the commit (an fsync) meanwhile, which is why only
        a worker with a single run in flight asks for it. A single statement runs in
        autocommit mode: it is its own transaction, as the floor's INSERT + COMMIT is.
        Busy writer, or another process holding the lock: the queue."""
        nothing: tuple[bool, Any] = (False, None)
        if not self._opened or not self._requests.empty():
            return nothing
        if not self._batch_lock.acquire(blocking=False):
            return nothing
        try:
            conn = self._inline_connection()
            if conn is None:
                return nothing
            before = conn.total_changes
            try:
                lazy = self._lazy_claims and isinstance(script, ClaimScript)
                if lazy is not self._inline_lazy:  # as the writer's connection does
                    self._inline_lazy = True  # unknown until the pragma is known to be set
                    conn.execute(f"PRAGMA synchronous={'normal' if lazy else self.synchronous}")
                    self._inline_lazy = lazy
                if statement:
                    value = resolved(script(self._tx(conn)))
                else:
                    conn.execute("BEGIN IMMEDIATE")
                    value = resolved(script(self._tx(conn)))
                    conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                # locked by another process (this connection never waits), or the
                # database failed (read-only, full): the writer's path waits, or reports
                # and reconnects; the rolled-back script runs again there
                _roll_back(conn)
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    self._drop_inline_connection()
                return nothing
            except BaseException:
                _roll_back(conn)
                raise
            if conn.total_changes != before:
                self._own_changes += 1
            return True, value
        finally:
            self._last_write_at = time.monotonic()
            self._batch_lock.release()

    def _inline_connection(self) -> sqlite3.Connection | None:
        """A connection of the event loop's for inline commits, with busy_timeout=0 (it
        never waits for another process's lock). In memory: the writer's (a new one would
        be another, empty database), which no other process can lock."""
        if self.path is None:
            return self._writer_conn
        if self._inline_conn is None:
            try:
                conn = self._connect()
                conn.execute("PRAGMA busy_timeout=0")
                # its writes are a lone run's checkpoints, a send, an idle worker's claim:
                # a few pages each. With SQLite's default 2 MiB it took that much more
                # memory as the database grew (+5 MB in a worker with 100,000 sleepers)
                conn.execute(f"PRAGMA cache_size=-{READER_CACHE_KIB}")
            except sqlite3.Error:
                return None
            self._inline_conn = conn
        return self._inline_conn

    def _drop_inline_connection(self) -> None:
        conn, self._inline_conn = self._inline_conn, None
        self._inline_lazy = False  # a new connection has the store's synchronous setting
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    async def prune(self, before: float, *, limit: int) -> Pruned:
        pruned = await super().prune(before, limit=limit)
        # The last batch of a prune (it found fewer than it was allowed) gives the free
        # pages back: this prune's, or those a busy file kept the last time. The batches
        # before it leave theirs for new rows: a vacuum after each would take the write
        # lock once more per batch, as long again as the batch's own statements.
        if self.path and pruned.runs < limit and pruned.events < limit:
            began = time.perf_counter()
            await self._give_space_back()
            pruned = replace(pruned, seconds=pruned.seconds + time.perf_counter() - began)
        return pruned

    async def _give_space_back(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._vacuum)

    def _vacuum(self) -> None:
        """Free pages go back to the file system (in a file created with
        auto_vacuum=incremental; an older file keeps them for new rows), VACUUM_STEP at a
        time, each its own short write followed by a pause, as a prune's batches are: 8 MiB
        given back at once held the write lock for tens of milliseconds. On a connection of
        its own: the pragma runs to its end only outside the writer's transactions. On a
        thread to its end, so a prune cancelled meanwhile (a worker stopping) never closes
        the connection under a step."""
        conn = self._connect()
        try:
            give_space_back(conn)
        finally:
            conn.close()

    async def _read(self, script: Callable[[Tx], T]) -> T:
        if self._readers is None:
            return await self._write(script)
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, self._read_in_thread, script
        )

    def _read_in_thread(self, script: Callable[[Tx], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect(readonly=True)
        conn.execute("BEGIN")
        try:
            return script(self._tx(conn))
        finally:
            conn.execute("COMMIT")


def _merged(conn: sqlite3.Connection, tx: Tx, batch: list[Any]) -> dict[int, Any]:
    """The batch's step checkpoints and run ends written a few statements for all
    (merges.py), their results by position; none if one of them was refused (a lease
    lost): they then run one by one like the rest, each told its own outcome."""
    scripts = [script for script, _future, _loop in batch]
    if sum(isinstance(each, (StepSave, RunEnd)) for each in scripts) < 2:
        return {}
    conn.execute("SAVEPOINT merged")
    try:
        checks = merge_writes(tx, scripts)
        values = {n: check.resolve() for n, check in checks.items()}
    except sqlite3.OperationalError:
        raise  # the database failed: the whole batch fails
    except Exception:
        conn.execute("ROLLBACK TO merged")
        conn.execute("RELEASE merged")
        return {}
    conn.execute("RELEASE merged")
    return values


def _roll_back(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


class _Rows:
    """The rows a statement returned, read at once."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows


def sqlite_from_url(url: str) -> SQLiteStore:
    """`sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `?synchronous=normal`."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    path = url[len("sqlite:///") :].split("?", 1)[0] if url.startswith("sqlite:///") else ""
    if not path:
        raise ConfigError(f"database URL {url!r}: write sqlite:///path/to/file.db")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(options) - {"synchronous", "busy_timeout"}
    if unknown:
        raise ConfigError(f"database URL {url!r}: unknown option(s) {', '.join(sorted(unknown))}")
    return SQLiteStore(
        os.path.expanduser(path),
        synchronous=options.get("synchronous", "full"),
        busy_timeout=float(options.get("busy_timeout", 30.0)),
        url=url,
    )
