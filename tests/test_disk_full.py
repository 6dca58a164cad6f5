"""A full disk: the worker says so clearly, keeps trying, and damages nothing saved.

The worker process gets a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored), so its
writes to the database fail exactly as on a full disk; raising the limit again on the
running process (the app lifts it on SIGUSR1) is "freeing space".
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import stepstone
from tests.process import ROOT, wait_until

LIMIT = 1_500_000  # bytes a file may grow to in the worker process


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))


async def _send(url: str, numbers: range) -> list[str]:
    app = stepstone.App("client", database=url)
    try:
        store = await app.store()
        while not any(c["id"] == "bulky" for c in await store.registered_functions()):
            await asyncio.sleep(0.02)
        ids = await app.send([{"name": "bulky/go", "data": {"n": n}} for n in numbers])
        return [(await app.runs_for_event(i))[0].id for i in ids]
    finally:
        await app.close()


async def _runs(url: str, run_ids: list[str]) -> list[stepstone.Run]:
    app = stepstone.App("client", database=url)
    try:
        return [r for r in [await app.get_run(i) for i in run_ids] if r is not None]
    finally:
        await app.close()


def test_full_disk_is_reported_retried_and_harmless(tmp_path: Path, sqlite_url: str) -> None:
    db = tmp_path / "stepstone.db"
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stepstone",
                "worker",
                "tests.apps.bulky:app",
                "--database",
                sqlite_url,
                "--lease",
                "1",
                "--poll",
                "0.05",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=_limit_file_size,
            env={**os.environ, "BULKY_FREE_SPACE_ON_USR1": "1"},
        )
    try:
        # a first run completes while there is room
        [first] = asyncio.run(_send(sqlite_url, range(1)))
        wait_until(
            lambda: asyncio.run(_runs(sqlite_url, [first]))[0].status == "completed",
            30,
            "the first run",
        )
        before = asyncio.run(_runs(sqlite_url, [first]))[0]
        # then the disk fills up
        later = asyncio.run(_send(sqlite_url, range(1, 40)))
        wait_until(
            lambda: b"full" in log_path.read_bytes() or b"disk I/O" in log_path.read_bytes(),
            60,
            "the worker to report the full disk",
        )
        time.sleep(1.0)
        assert worker.poll() is None  # still running, still trying
        stuck = asyncio.run(_runs(sqlite_url, later))
        assert any(not r.status.is_final for r in stuck)
        # space comes back: the same worker finishes everything by itself
        worker.send_signal(signal.SIGUSR1)
        wait_until(
            lambda: all(r.status == "completed" for r in asyncio.run(_runs(sqlite_url, later))),
            90,
            "the runs to complete once there is room",
        )
    finally:
        worker.kill()
        worker.wait(timeout=10)
    after = asyncio.run(_runs(sqlite_url, [first, *later]))
    assert after[0].output == before.output and after[0].steps == before.steps
    assert [r.output["n"] for r in after] == list(range(40))
    assert all(r.output["total"] == 4 * len(f"{r.output['n']}-0-") + 4 * 60_000 for r in after)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    log_text = log_path.read_text()
    assert "database or disk is full" in log_text or "disk I/O error" in log_text
