"""Start and stop real worker processes for crash and fencing tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
    full_env = {**os.environ, **env, "WORKER_NAME": name, "PYTHONPATH": str(ROOT)}
    with open(log_dir / f"worker-{name}.log", "ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stepstone",
                "worker",
                app,
                "--database",
                database_url,
                "--lease",
                str(lease),
                "--poll",
                str(poll),
            ],
            env=full_env,
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
