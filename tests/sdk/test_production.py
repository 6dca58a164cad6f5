"""An SDK app in production mode on `stepstone start` with PostgreSQL and keys, as real
processes: the sync needs the signing key, events need a known event key, calls are
signed; a worker killed while a call is in flight leaves the run to another worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import stepstone
from tests.helpers import read_run
from tests.live_server import wait_for
from tests.process import ROOT
from tests.sdk import harness

SIGNING_KEY = "signkey-test-" + "5f3a" * 16
EVENT_KEY = "prod-event-key-Q2w"
TOKEN = "prod-api-token-Z9x"


def _stepstone(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stepstone", *args],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _started(log: Path, process: subprocess.Popen[bytes], what: str) -> None:
    def ready() -> bool:
        assert process.poll() is None, f"{what} exited:\n{log.read_text()}"
        return "functions" in log.read_text()

    wait_for(ready, timeout=60, what=f"{what} to start")


@pytest.fixture
def production(
    tmp_path: Path, postgres_url: str
) -> Iterator[tuple[str, harness.SdkApp, subprocess.Popen[bytes], Path]]:
    """`stepstone start` on PostgreSQL with keys, and the Python SDK app synced to it."""
    port = harness.free_port()
    server_url = f"http://127.0.0.1:{port}"
    sdk = harness.start_app(
        "py",
        server_url,
        tmp_path,
        signing_key=SIGNING_KEY,
        extra_env={"INNGEST_EVENT_KEY": EVENT_KEY},
    )
    env = {
        "STEPSTONE_SIGNING_KEY": SIGNING_KEY,
        "STEPSTONE_EVENT_KEYS": EVENT_KEY,
        "STEPSTONE_API_TOKEN": TOKEN,
    }
    log = tmp_path / "server.log"
    args = ["start", "-d", postgres_url, "--host", "127.0.0.1", "--port", str(port)]
    server = _stepstone([*args, "--lease", "2", "-u", sdk.url], log, env)
    try:
        _started(log, server, "stepstone start")
        wait_for(lambda: "synced" in log.read_text() or "sync failed" in log.read_text())
        assert "sync failed" not in log.read_text(), log.read_text()
        yield server_url, sdk, server, log
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        sdk.stop()


def _send(server_url: str, name: str, data: dict[str, Any], key: str = EVENT_KEY) -> Any:
    return httpx.post(f"{server_url}/e/{key}", json=[{"name": name, "data": data}], timeout=30)


def _api(server_url: str) -> httpx.Client:
    headers = {"authorization": f"Bearer {TOKEN}"}
    return httpx.Client(base_url=server_url, headers=headers, timeout=30)


def _finished_run(api: httpx.Client, event_id: str, function_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        runs = api.get(f"/v1/events/{event_id}").json().get("runs", [])
        mine = [r for r in runs if r["function_id"] == function_id]
        if not mine:
            return None
        run: dict[str, Any] = api.get(f"/v1/runs/{mine[0]['id']}").json()
        return run if run["status"] in ("completed", "failed", "cancelled") else None

    found: dict[str, Any] = wait_for(ended, timeout=60, what=f"a run of {function_id}")
    return found


def test_signed_runs_with_keys_on_postgres(
    production: tuple[str, harness.SdkApp, subprocess.Popen[bytes], Path],
) -> None:
    server_url, sdk, _, _ = production
    # an unknown event key is refused, and stores nothing
    assert _send(server_url, "test/sequential", {}, key="wrong-key").status_code == 401
    answer = _send(server_url, "test/sequential", {"start": 2})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == 200
    [event_id] = answer.json()["ids"]
    with _api(server_url) as api:
        run = _finished_run(api, event_id, sdk.function_id("sequential"))
        assert run["status"] == "completed", run
        assert run["output"] == {"sum": 5}
        # parallel steps, and an event the app sends itself with its event key
        [parallel] = _send(server_url, "test/parallel", {}).json()["ids"]
        assert _finished_run(api, parallel, sdk.function_id("parallel"))["output"] == [
            "a",
            "b",
            "a+b",
        ]
        [sending] = _send(server_url, "test/sender", {}).json()["ids"]
        sent = _finished_run(api, sending, sdk.function_id("sender"))
        assert sent["status"] == "completed", sent
    assert sdk.effects().count("sequential:one") == 1
    assert sorted(e for e in sdk.effects() if e.startswith("parallel:")) == [
        "parallel:a",
        "parallel:after",
        "parallel:b",
    ]


def test_a_sync_without_the_signing_key_is_refused(
    production: tuple[str, harness.SdkApp, subprocess.Popen[bytes], Path],
) -> None:
    server_url, _, _, _ = production
    body = {"url": "http://127.0.0.1:1/api/inngest", "appName": "intruder", "functions": []}
    for token in (None, "Bearer " + "0" * 64, "Bearer signkey-test-" + "0" * 64):
        headers = {} if token is None else {"authorization": token}
        answer = httpx.post(f"{server_url}/fn/register", json=body, headers=headers, timeout=30)
        assert answer.status_code == 401, answer.text


def test_a_worker_killed_mid_call_leaves_the_run_to_another(
    production: tuple[str, harness.SdkApp, subprocess.Popen[bytes], Path],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    server_url, sdk, server, _ = production
    # long enough that the other worker starts before the call is over
    [event_id] = _send(server_url, "test/slow", {"seconds": 12}).json()["ids"]
    # the server's worker is in the middle of the long step's call
    wait_for(lambda: "slow:start" in sdk.effects(), timeout=60, what="the long step to start")
    other_log = tmp_path / "worker.log"
    env = {"STEPSTONE_SIGNING_KEY": SIGNING_KEY}
    worker = _stepstone(["worker", "-d", postgres_url, "--lease", "2"], other_log, env)
    try:
        _started(other_log, worker, "stepstone worker")
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        run_id = _run_id_of(postgres_url, event_id)
        deadline = time.monotonic() + 90
        while True:
            run = asyncio.run(read_run(postgres_url, run_id))
            if run.status == "completed":
                break
            assert time.monotonic() < deadline, f"the run is still {run.status}"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert run.output == "long"
    effects = sdk.effects()
    assert effects.count("slow:end") >= 1, "the step was not in flight when the worker died"
    assert effects.count("slow:before") == 1  # a finished step is not run again
    assert effects.count("slow:start") >= 2  # the step in flight ran again, on the other
    started_by = [h.data.get("worker") for h in run.history if h.kind == "started"]
    assert len(set(started_by)) == 2, started_by


def _run_id_of(database_url: str, event_id: str) -> str:
    """The id of the run an event started, read from the database (the server is gone)."""

    async def find() -> str:
        app = stepstone.App("reader", database=database_url)
        try:
            for _ in range(300):
                runs = await app.runs_for_event(event_id)
                if runs:
                    return runs[0].id
                await asyncio.sleep(0.1)
            raise AssertionError(f"no run for event {event_id}")
        finally:
            await app.close()

    return asyncio.run(find())
