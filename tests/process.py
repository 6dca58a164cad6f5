"""Real worker processes (`python -m stepstone worker ...`) for the multi-process tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = " started on "  # logged once the worker has started (and, on PostgreSQL, LISTENs)


def worker_command(
    database_url: str, app: str, *, lease: float, extra: tuple[str, ...] = ()
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stepstone",
        "worker",
        app,
        "--database",
        database_url,
        "--lease",
        str(lease),
        *extra,
    ]


def worker_env(extra: dict[str, str]) -> dict[str, str]:
    # ROOT first; what PYTHONPATH held stays (scripts/breakages.py puts a broken copy there)
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, **extra, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    env["COLUMNS"] = "300"
    env.pop("STEPSTONE_DATABASE_URL", None)
    # workers run as in production: asyncio's debug mode slows them down several times
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


def start_worker(
    database_url: str,
    app: str,
    *,
    name: str,
    env: dict[str, str],
    log_dir: Path,
    lease: float = 1.0,
    poll: float = 0.05,
) -> subprocess.Popen[bytes]:
    command = worker_command(database_url, app, lease=lease, extra=("--poll", str(poll)))
    with open(log_dir / f"worker-{name}.log", "ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            command,
            env=worker_env({**env, "WORKER_NAME": name}),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def ledger_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


class WorkerProcess:
    def __init__(
        self,
        database_url: str,
        ledger: Path,
        logs: Path,
        *,
        app: str = "tests.apps.scale:app",
        lease: float = 2.0,
        concurrency: int = 50,
        extra: tuple[str, ...] = (),
    ) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        ledger.mkdir(parents=True, exist_ok=True)
        command = worker_command(
            database_url, app, lease=lease, extra=("--concurrency", str(concurrency), *extra)
        )
        env = worker_env({"STEPSTONE_TEST_LEDGER": str(ledger)})
        self.log_path = logs / f"worker-{len(list(logs.iterdir()))}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while READY not in self.log():
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.pid} exited:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.pid} did not start:\n{self.log()}")
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait: the worker finishes or abandons its runs and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
