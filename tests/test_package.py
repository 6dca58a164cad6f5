"""The package as a user gets it: the sdist and the wheel, each installed into a fresh
virtual environment outside the source tree, run a function on SQLite and on PostgreSQL,
answer `stepstone --version` and serve `stepstone dev`.

The editable install the other tests use reads files straight from src/, so it cannot
show a file that the package data leaves out; only an installed build can.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.pg_cluster import PostgresCluster

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(600)

# The user's code: an app module, and a script that runs one function end to end.
APP_MODULE = """
import os
import stepstone

app = stepstone.App("packaged", database=os.environ.get("PACKAGED_DATABASE"))


@app.function(id="double", trigger="packaged/go")
async def double(ctx: stepstone.Context) -> dict:
    n = await ctx.step.run("twice", lambda: ctx.event.data["n"] * 2)
    return {"n": n}
"""

RUN_SCRIPT = """
import asyncio, json, stepstone
from packaged_app import app

async def main():
    async with app.worker():
        [event_id] = await app.send({"name": "packaged/go", "data": {"n": 21}})
        [run] = await app.runs_for_event(event_id)
        run = await app.wait_for_run(run.id, timeout=30)
    await app.close()
    print(json.dumps({"file": stepstone.__file__, "status": run.status.value,
                      "output": run.output, "steps": [s.id for s in run.steps]}))

asyncio.run(main())
"""


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user's shell with only `venv` on it: nothing of this checkout
    (no PYTHONPATH, no other virtual environment, no user site-packages)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "STEPSTONE_DATABASE_URL"}
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and, built from it, the wheel (what `python -m build` does by default)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


@pytest.fixture(scope="module", params=["wheel", "sdist"])
def venv(
    request: pytest.FixtureRequest, dist: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A fresh virtual environment with the build installed, in a directory of its own."""
    pattern = "stepstone-*.whl" if request.param == "wheel" else "stepstone-*.tar.gz"
    [built] = dist.glob(pattern)
    home = tmp_path_factory.mktemp(f"user-{request.param}")
    path = home / "venv"
    # without pip of its own: this environment's pip installs into it (`--python`), which
    # saves bootstrapping pip in every new environment
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(path / "bin" / "python")]
    subprocess.run(
        [*pip, "install", "--quiet", str(built)],
        check=True,
        capture_output=True,
        text=True,
        cwd=home,
    )
    (home / "packaged_app.py").write_text(APP_MODULE)
    (home / "run_packaged.py").write_text(RUN_SCRIPT)
    return path


def _run_function(venv: Path, database: str) -> dict[str, object]:
    env = {**_clean_env(venv), "PACKAGED_DATABASE": database}
    done = subprocess.run(
        [str(venv / "bin" / "python"), "run_packaged.py"],
        cwd=venv.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def _assert_ran_from(venv: Path, result: dict[str, object]) -> None:
    assert str(result["file"]).startswith(str(venv)), result["file"]
    assert str(ROOT) not in str(result["file"])
    assert result["status"] == "completed"
    assert result["output"] == {"n": 42}
    assert result["steps"] == ["twice"]


def test_a_function_runs_on_sqlite(venv: Path) -> None:
    database = f"sqlite:///{venv.parent / 'packaged.db'}"
    _assert_ran_from(venv, _run_function(venv, database))


def test_a_function_runs_on_postgres(venv: Path, postgres_cluster: PostgresCluster) -> None:
    # an empty database: the installed package must bring and apply its own migrations
    name = postgres_cluster.create_database()
    try:
        _assert_ran_from(venv, _run_function(venv, postgres_cluster.url(name)))
    finally:
        postgres_cluster.drop_database(name)


def test_the_command_line_says_its_version(venv: Path) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "stepstone"), "--version"],
        cwd=venv.parent,
        env=_clean_env(venv),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "stepstone, version 0.1.0"


@pytest.fixture
def dev_server(venv: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    database = ["--database", f"sqlite:///{venv.parent / 'dev.db'}"]
    server = subprocess.Popen(
        [
            str(venv / "bin" / "stepstone"),
            "dev",
            "packaged_app:app",
            "--port",
            str(port),
            *database,
        ],
        cwd=venv.parent,
        env=_clean_env(venv),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()


def _get(url: str, deadline: float) -> httpx.Response:
    """GET `url` once the server listens (it may still be starting)."""
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_dev_server_serves_the_api_and_the_dashboard(dev_server: str) -> None:
    deadline = time.monotonic() + 30
    health = _get(f"{dev_server}/health", deadline)
    assert health.json()["status"] == "ok" and health.json()["app"] == "packaged"
    assert "stepstone" in _get(f"{dev_server}/", deadline).text
    assert _get(f"{dev_server}/static/app.js", deadline).status_code == 200
    sent = httpx.post(f"{dev_server}/e/dev", json={"name": "packaged/go", "data": {"n": 5}})
    [event_id] = sent.json()["ids"]
    while True:
        [run] = httpx.get(f"{dev_server}/v1/events/{event_id}").json()["runs"]
        if run["status"] == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert httpx.get(f"{dev_server}/v1/runs/{run['id']}").json()["output"] == {"n": 10}
