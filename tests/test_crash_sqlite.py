"""Crash safety and fencing with real worker processes on one SQLite file."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import stepstone
from tests.helpers import read_run
from tests.process import ledger_lines, start_worker, stop, wait_until

APP = "tests.apps.ledger:app"


async def _send(url: str) -> str:
    """Send from a process without the function's code: the worker's published config is used."""
    app = stepstone.App("client", database=url)
    try:
        store = await app.store()
        for _ in range(500):
            if any(c["id"] == "three-steps" for c in await store.registered_functions()):
                break
            await asyncio.sleep(0.02)
        [event_id] = await app.send({"name": "ledger/go", "data": {}})
        for _ in range(100):
            runs = await app.runs_for_event(event_id)
            if runs:
                return runs[0].id
            await asyncio.sleep(0.01)
        raise AssertionError("the event started no run")
    finally:
        await app.close()


async def _wait(url: str, run_id: str, timeout: float) -> stepstone.Run:
    app = stepstone.App("client", database=url)
    try:
        return await app.wait_for_run(run_id, timeout=timeout)
    finally:
        await app.close()


def test_sigkill_mid_step_resumes_on_another_worker(tmp_path: Path, sqlite_url: str) -> None:
    ledger = tmp_path / "ledger.txt"
    env = {"LEDGER": str(ledger), "SLOW_SECONDS": "30"}
    a = start_worker(sqlite_url, APP, name="A", env=env, log_dir=tmp_path)
    b = None
    try:
        run_id = asyncio.run(_send(sqlite_url))
        wait_until(
            lambda: "slow-start A" in ledger_lines(ledger), 20, "worker A to start the slow step"
        )
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        b = start_worker(
            sqlite_url, APP, name="B", env={**env, "SLOW_SECONDS": "0"}, log_dir=tmp_path
        )
        run = asyncio.run(_wait(sqlite_url, run_id, 30))
    finally:
        stop(a)
        if b is not None:
            stop(b)
    lines = ledger_lines(ledger)
    assert run.status == "completed", run.error
    assert run.output == ["first", "B", "last"]
    assert lines.count("first A") == 1 and not any(line.startswith("first B") for line in lines)
    assert "slow-start B" in lines and "slow-end A" not in lines
    assert lines.count("last B") == 1
    assert any(h.kind == "started" and h.data.get("worker", "").count(":") for h in run.history)


@contextmanager
def _frozen_past_its_lease(
    url: str,
    tmp_path: Path,
    env: dict[str, str],
    frozen: Callable[[subprocess.Popen[bytes]], bool],
    *,
    freeze: bool,
) -> Iterator[tuple[str, stepstone.Run, subprocess.Popen[bytes]]]:
    """Worker A runs the ledger app until `frozen(A)`; A, frozen there (by the test with
    `freeze`, else by itself) past its 1 s lease, loses the run to B, which finishes it;
    then A wakes. Yields the run's id, the run as B finished it, and A."""
    a = start_worker(url, APP, name="A", env=env, log_dir=tmp_path, lease=1.0)
    b = None
    try:
        run_id = asyncio.run(_send(url))
        wait_until(lambda: frozen(a), 20, "worker A to reach the point where it freezes")
        if freeze:
            a.send_signal(signal.SIGSTOP)
        time.sleep(1.5)  # A's lease (1 s) expires while it is frozen
        b = start_worker(url, APP, name="B", env={**env, "SLOW_SECONDS": "0"}, log_dir=tmp_path)
        run = asyncio.run(_wait(url, run_id, 30))
        a.send_signal(signal.SIGCONT)
        yield run_id, run, a
    finally:
        stop(a)
        if b is not None:
            stop(b)


def test_worker_paused_past_its_lease_cannot_save(tmp_path: Path, sqlite_url: str) -> None:
    ledger = tmp_path / "ledger.txt"
    env = {"LEDGER": str(ledger), "SLOW_SECONDS": "2"}

    def slow_started(a: subprocess.Popen[bytes]) -> bool:
        return "slow-start A" in ledger_lines(ledger)

    with _frozen_past_its_lease(sqlite_url, tmp_path, env, slow_started, freeze=True) as (
        run_id,
        run,
        _,
    ):
        assert run.output == ["first", "B", "last"]
        # A wakes up, finishes its slow step and tries to save it: the write is refused
        wait_until(lambda: "slow-end A" in ledger_lines(ledger), 20, "worker A to finish its step")
        time.sleep(0.5)
        after = asyncio.run(read_run(sqlite_url, run_id))
    assert after.status == "completed"
    assert after.output == ["first", "B", "last"]
    assert after.step("slow").output == "B"  # not overwritten by A
    lines = ledger_lines(ledger)
    assert "last A" not in lines  # A started no step after losing the run
    assert lines.count("first A") == 1
    log = (tmp_path / "worker-A.log").read_text()
    assert "lease lost" in log


def test_worker_paused_between_steps_starts_no_step_once_its_lease_ran_out(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A worker frozen between two steps, past its lease, found on waking that its next step
    had to start, and ran it once more although another worker had finished it: the lease
    is now checked, by the worker's clock, before any step starts."""
    ledger = tmp_path / "ledger.txt"
    env = {"LEDGER": str(ledger), "STOP_BETWEEN_STEPS": "A"}

    def stopped_itself(a: subprocess.Popen[bytes]) -> bool:
        with open(f"/proc/{a.pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "T"

    with _frozen_past_its_lease(sqlite_url, tmp_path, env, stopped_itself, freeze=False) as (
        _,
        run,
        a,
    ):
        assert run.output == ["first", "B", "last"]
        time.sleep(1.5)  # long enough for A to start a step, were it to
        assert a.poll() is None  # A lives on
    lines = ledger_lines(ledger)
    assert "slow-start A" not in lines and "last A" not in lines, lines
    assert lines.count("slow-start B") == 1
