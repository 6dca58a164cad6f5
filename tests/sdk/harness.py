"""The official SDKs as real test clients: installed once into a cache, run as processes.

The SDKs are installed at pinned versions from PyPI and npm into a cache outside the
source tree (`$STEPSTONE_TEST_CACHE`, default `~/.cache/stepstone-tests`), one folder per
pinned set, reused when present; a file lock keeps parallel test runs from installing the
same set twice. A registry that cannot be reached fails the install loudly: the SDK tests
are never skipped.

`start_py_app` / `start_js_app` run the apps of `tests/sdk_apps/` (FastAPI and Express)
on free ports, pointed at a server URL with the SDKs' own variables.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "sdk_apps"

PY_REQUIREMENTS = ("inngest==0.5.19", "fastapi==0.115.12", "uvicorn==0.34.3")
JS_DEPENDENCIES = {"inngest": "4.24.0", "express": "5.1.0"}
PY_SDK_VERSION = "0.5.19"
JS_SDK_VERSION = "4.24.0"
INSTALL_TIMEOUT = 900.0


class SdkInstallError(RuntimeError):
    pass


def cache_root() -> Path:
    configured = os.environ.get("STEPSTONE_TEST_CACHE")
    root = Path(configured) if configured else Path.home() / ".cache" / "stepstone-tests"
    if ROOT in root.resolve().parents or root.resolve() == ROOT:
        raise SdkInstallError(f"the SDK cache {root} must be outside the source tree {ROOT}")
    root.mkdir(parents=True, exist_ok=True)
    return root


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(command: list[str], *, cwd: Path | None = None, what: str) -> None:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise SdkInstallError(f"{what}: {exc}; run `make system-deps`") from None
    except subprocess.TimeoutExpired:
        raise SdkInstallError(f"{what}: timed out after {INSTALL_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        raise SdkInstallError(
            f"{what} failed ({done.returncode}): {' '.join(command)}\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


def _cached(name: str) -> tuple[Path, bool]:
    target = cache_root() / name
    return target, (target / ".complete").exists()


def python_sdk() -> Path:
    """The Python interpreter of a venv holding the pinned Python SDK, FastAPI and uvicorn."""
    name = f"py-inngest-{PY_SDK_VERSION}-{_key(sys.version, *PY_REQUIREMENTS)}"
    target, ready = _cached(name)
    python = target / "bin" / "python"
    if ready:
        return python
    with _locked(cache_root() / f"{name}.lock"):
        if (target / ".complete").exists():
            return python
        shutil.rmtree(target, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(target)], what="creating the SDK venv")
        _run(
            [str(python), "-m", "pip", "install", "--quiet", *PY_REQUIREMENTS],
            what=f"pip install {' '.join(PY_REQUIREMENTS)}",
        )
        (target / ".complete").write_text(json.dumps(PY_REQUIREMENTS))
    return python


def js_sdk() -> Path:
    """A node_modules folder holding the pinned npm SDK and Express."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SdkInstallError("node and npm are needed for the npm SDK's tests: make system-deps")
    spec = json.dumps(JS_DEPENDENCIES, sort_keys=True)
    name = f"js-inngest-{JS_SDK_VERSION}-{_key(spec)}"
    target, ready = _cached(name)
    modules = target / "node_modules"
    if ready:
        return modules
    with _locked(cache_root() / f"{name}.lock"):
        if (target / ".complete").exists():
            return modules
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        package = {"name": "stepstone-sdk-tests", "private": True, "dependencies": JS_DEPENDENCIES}
        (target / "package.json").write_text(json.dumps(package, indent=2))
        _run(
            ["npm", "install", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error"],
            cwd=target,
            what=f"npm install {spec}",
        )
        (target / ".complete").write_text(spec)
    return modules


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SdkApp:
    """A running SDK app: its serve URL, its process and the files it writes."""

    kind: str  # "py" | "js"
    app_id: str
    url: str  # the serve endpoint, e.g. http://127.0.0.1:PORT/api/inngest
    process: subprocess.Popen[bytes]
    log_path: Path
    ledger: Path
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def effects(self) -> list[str]:
        """The side effects the app's steps recorded, one line each, in order."""
        return self.ledger.read_text().splitlines() if self.ledger.exists() else []

    def function_id(self, fn: str) -> str:
        return f"{self.app_id}-{fn}"

    def step_url(self, fn: str) -> str:
        return f"{self.url}?fnId={self.function_id(fn)}&stepId=step"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _sdk_env(server_url: str, signing_key: str | None, extra: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("INNGEST_", "NEXT_PUBLIC_INNGEST", "REACT_APP_INNGEST"))
    }
    env["INNGEST_BASE_URL"] = server_url
    if signing_key is None:
        env["INNGEST_DEV"] = "1"
    else:
        env["INNGEST_DEV"] = "0"
        env["INNGEST_SIGNING_KEY"] = signing_key
        env["INNGEST_EVENT_KEY"] = extra.pop("INNGEST_EVENT_KEY", "test-event-key")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _start(
    kind: str,
    command: list[str],
    *,
    app_id: str,
    path: str,
    workdir: Path,
    env: dict[str, str],
    port: int,
    timeout: float,
) -> SdkApp:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{kind}-app-{port}.log"
    ledger = workdir / f"{kind}-ledger-{port}.txt"
    env = {**env, "PORT": str(port), "SDK_TEST_LEDGER": str(ledger), "SDK_TEST_APP_ID": app_id}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
    app = SdkApp(kind, app_id, f"http://127.0.0.1:{port}{path}", process, log_path, ledger, env)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the {kind} SDK app exited ({process.returncode}):\n{app.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return app
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            app.stop()
            raise AssertionError(f"the {kind} SDK app did not start in {timeout} s:\n{app.log()}")
        time.sleep(0.05)


_APPS = {
    # kind: (the app's file, how to run it)
    "py": ("py_app.py", lambda: [str(python_sdk())]),
    "js": ("js_app.cjs", lambda: ["node"]),
}


def start_app(
    kind: str,
    server_url: str,
    workdir: Path,
    *,
    signing_key: str | None = None,
    app_id: str | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 60.0,
    source: str | None = None,
) -> SdkApp:
    """The app of tests/sdk_apps/ for `kind` ("py": FastAPI, "js": Express) at /api/inngest.

    `source` runs another app file written with that kind's SDK: a file of tests/sdk_apps/
    (such as "seed_app.cjs") or an absolute path; by default the kind's own app."""
    default, runner = _APPS[kind]
    command = [*runner(), str(APPS / (source or default))]
    env = _sdk_env(server_url, signing_key, dict(extra_env or {}))
    if kind == "js":
        env["NODE_PATH"] = str(js_sdk())
    return _start(
        kind,
        command,
        app_id=app_id or f"{kind}-app",
        path="/api/inngest",
        workdir=workdir,
        env=env,
        port=free_port(),
        timeout=timeout,
    )


@contextmanager
def synced_app(kind: str, server_url: str, workdir: Path, **options: Any) -> Iterator[SdkApp]:
    """`start_app`, then synced by a PUT to its serve URL (the SDK POSTs its functions to the
    server); stopped on exit."""
    app = start_app(kind, server_url, workdir, **options)
    try:
        request = urllib.request.Request(app.url, method="PUT")
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read().decode(errors="replace")
            assert answer.status == 200, body
        yield app
    finally:
        app.stop()
