"""A database file that turns read-only (chattr +i: even root cannot write it).

The worker says so clearly, keeps trying, and resumes by itself once the file is
writable again; a sender gets a StorageError naming the file; nothing saved is damaged.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path

import pytest

import stepstone
from tests.helpers import read_run
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


def test_read_only_database_file(tmp_path: Path, sqlite_url: str) -> None:
    db = tmp_path / "stepstone.db"
    files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    worker = start_worker(sqlite_url, "tests.apps.napper:app", name="w", env={}, log_dir=tmp_path)
    locked = False
    try:
        first = asyncio.run(_send(sqlite_url))
        wait_until(
            lambda: asyncio.run(read_run(sqlite_url, first)).status == "completed", 30, "run 1"
        )
        second = asyncio.run(_send(sqlite_url))
        wait_until(
            lambda: asyncio.run(read_run(sqlite_url, second)).status == "sleeping", 30, "sleep"
        )
        _chattr("+i", files)
        locked = True
        message = asyncio.run(_send_refused(sqlite_url))
        assert str(db) in message and "writable" in message
        log = tmp_path / "worker-w.log"
        wait_until(lambda: "readonly" in log.read_text(), 30, "the worker to report it")
        assert worker.poll() is None
        assert asyncio.run(read_run(sqlite_url, second)).status != "completed"
        _chattr("-i", files)
        locked = False
        wait_until(
            lambda: asyncio.run(read_run(sqlite_url, second)).status == "completed",
            30,
            "the run to finish once the file is writable",
        )
    finally:
        if locked:
            _chattr("-i", files)
        stop(worker)
    done = asyncio.run(read_run(sqlite_url, second))
    assert done.output == "awake"
    assert asyncio.run(read_run(sqlite_url, first)).output == "awake"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
