"""Worker processes for the multi-process tests: `python -m stepstone worker ...`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = " started on "  # logged once the worker has started (and, on PostgreSQL, LISTENs)


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
        command = [sys.executable, "-m", "stepstone", "worker", app]
        command += ["--database", database_url, "--lease", str(lease)]
        command += ["--concurrency", str(concurrency), *extra]
        env = {**os.environ, "STEPSTONE_TEST_LEDGER": str(ledger), "COLUMNS": "300"}
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("STEPSTONE_DATABASE_URL", None)
        # the workers run as in production: asyncio's debug mode (which the test session
        # turns on) slows them down several times
        env.pop("PYTHONASYNCIODEBUG", None)
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
