"""A database that turns read-only: a SQLite file (chattr +i: even root cannot write it),
and a PostgreSQL database (default_transaction_read_only, as a full disk refuses writes).

The worker says so clearly, keeps trying, and resumes by itself once the file is
writable again; a sender gets a StorageError naming the file; nothing saved is damaged.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import stepstone
from tests.helpers import read_run
from tests.pg_cluster import PostgresCluster
from tests.process import start_worker, stop, wait_until


def _chattr(flag: str, files: list[Path]) -> None:
    subprocess.run(["chattr", flag, *map(str, files)], check=True)


async def _client(url: str) -> stepstone.App:
    app = stepstone.App("client", database=url)
    store = await app.store()
    while not any(c["id"] == "napper" for c in await store.registered_functions()):
        await asyncio.sleep(0.02)
    return app


async def _send(url: str) -> str:
    app = await _client(url)
    try:
        [event_id] = await app.send({"name": "napper/go"})
        return (await app.runs_for_event(event_id))[0].id
    finally:
        await app.close()


async def _send_refused(url: str) -> str:
    app = stepstone.App("client", database=url)
    try:
        with pytest.raises(stepstone.StorageError) as info:
            await app.send({"name": "napper/go"})
        return str(info.value)
    finally:
        await app.close()


def _one_done_one_sleeping(url: str) -> tuple[str, str]:
    """Two runs of the napper: the first completed, the second asleep."""
    first = asyncio.run(_send(url))
    wait_until(lambda: asyncio.run(read_run(url, first)).status == "completed", 30, "run 1")
    second = asyncio.run(_send(url))
    wait_until(lambda: asyncio.run(read_run(url, second)).status == "sleeping", 30, "sleep")
    return first, second


def _refused_then_resumed(
    url: str,
    tmp_path: Path,
    *,
    refuse: Callable[[], None],
    allow: Callable[[], None],
    says: str,
    logged: str,
) -> None:
    """With a run asleep, the database turns unwritable (`refuse`): a sender gets a
    StorageError that `says` so, the worker logs `logged` and lives on, and the run waits;
    once writable again (`allow`), the run finishes by itself."""
    worker = start_worker(url, "tests.apps.napper:app", name="w", env={}, log_dir=tmp_path)
    refused = False
    try:
        first, second = _one_done_one_sleeping(url)
        refuse()
        refused = True
        message = asyncio.run(_send_refused(url))
        assert says in message, message
        log = tmp_path / "worker-w.log"
        wait_until(lambda: logged in log.read_text(), 30, "the worker to report it")
        time.sleep(2)  # past the nap: the run is due, and cannot go on
        assert worker.poll() is None
        assert asyncio.run(read_run(url, second)).status != "completed"
        allow()
        refused = False
        wait_until(
            lambda: asyncio.run(read_run(url, second)).status == "completed",
            60,
            "the run to finish once the database is writable",
        )
    finally:
        if refused:
            allow()
        stop(worker)
    assert asyncio.run(read_run(url, second)).output == "awake"
    assert asyncio.run(read_run(url, first)).output == "awake"


def test_read_only_database_file(tmp_path: Path, sqlite_url: str) -> None:
    db = tmp_path / "stepstone.db"
    files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    _refused_then_resumed(
        sqlite_url,
        tmp_path,
        refuse=lambda: _chattr("+i", files),
        allow=lambda: _chattr("-i", files),
        says=f"could not write to the SQLite database {db}",
        logged="readonly",
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _set_read_only(cluster: PostgresCluster, database: str, on: bool) -> None:
    """The database turns read-only (or writable) for every session: the setting applies to
    new sessions, so the open ones are ended (the pools reconnect)."""
    with cluster.admin() as conn:
        value = "on" if on else "off"
        conn.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = {value}')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )


def test_read_only_postgres_database(
    tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    """As a full disk does on PostgreSQL (writes refused, reads fine). The sender's error
    was psycopg's own, not a StorageError."""
    database = postgres_url.split("@/", 1)[1].split("?", 1)[0]
    _refused_then_resumed(
        postgres_url,
        tmp_path,
        refuse=lambda: _set_read_only(postgres_cluster, database, True),
        allow=lambda: _set_read_only(postgres_cluster, database, False),
        says="could not write to the PostgreSQL database",
        logged="read-only",
    )
    log = (tmp_path / "worker-w.log").read_text()
    assert log.count("Traceback") < 50, log[-3000:]  # said, not flooded
