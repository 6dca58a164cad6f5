"""`stepstone dev` and `stepstone start` as real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from stepstone.cli import main

from .live_server import wait_for_run

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "cli-token-P0o9"
KEY = "cli-key-Mn7"


@contextmanager
def _serving(args: list[str], env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """Start `stepstone <args>`, yield (its URL, its output lines so far); stop it with SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stepstone", *args],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        url = None
        for line in process.stdout:  # the banner ends with the functions line
            lines.append(line)
            found = re.search(r" on (http://\S+)", line)
            url = found.group(1) if found else url
            if url and "functions" in line:
                break
        else:
            raise AssertionError("the server did not start:\n" + "".join(lines))
        yield url, lines
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
        lines.append(rest)
        code = process.returncode
    assert code == 0, "".join(lines)


def test_dev_serves_api_and_dashboard_without_keys(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'dev.db'}"
    with (
        _serving(["dev", "tests.server_app:app", "-d", database, "--port", "0"], {}) as (url, _),
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        assert http.get("/").status_code == 200
        [event_id] = http.post("/e/anything", json={"name": "test/greet"}).json()["ids"]
        [run] = http.get(f"/v1/events/{event_id}").json()["runs"]
        assert wait_for_run(http, run["id"])["output"] == {"said": "HELLO WORLD"}


def test_dev_answers_to_loopback_names_and_the_allowed_ones_only(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'hosts.db'}"
    args = ["dev", "tests.server_app:app", "-d", database, "--port", "0"]
    args += ["--allowed-host", "box.lan", "--allowed-host", "other.lan:8288"]
    with _serving(args, {}) as (url, _), httpx.Client(base_url=url, timeout=30) as http:
        for host in ("localhost:8288", "127.0.0.1", "box.lan", "other.lan"):
            assert http.get("/health", headers={"host": host}).status_code == 200, host
        assert http.get("/health", headers={"host": "rebound.example"}).status_code == 403


def test_start_needs_keys_and_token_and_never_prints_them(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'start.db'}"
    env = {"STEPSTONE_EVENT_KEYS": f"other,{KEY}", "STEPSTONE_API_TOKEN": TOKEN}
    args = ["start", "tests.server_app:app", "-d", database, "--host", "127.0.0.1", "--port", "0"]
    with _serving(args, env) as (url, lines), httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/e/wrong", json={"name": "test/greet"}).status_code == 401
        [event_id] = http.post(f"/e/{KEY}", json={"name": "test/greet"}).json()["ids"]
        assert http.get(f"/v1/events/{event_id}").status_code == 401
        http.headers["authorization"] = f"Bearer {TOKEN}"
        [run] = http.get(f"/v1/events/{event_id}").json()["runs"]
        assert wait_for_run(http, run["id"])["status"] == "completed"
    output = "".join(lines)
    assert "functions  greet, nap" in output
    assert KEY not in output and TOKEN not in output


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        ([], {"STEPSTONE_EVENT_KEYS": KEY}, "give --api-token (or set STEPSTONE_API_TOKEN)"),
        (["--event-key", KEY, "--api-token", "  "], {}, "give --api-token"),
        ([], {"STEPSTONE_API_TOKEN": TOKEN}, "give at least one --event-key"),
        ([], {"STEPSTONE_API_TOKEN": TOKEN, "STEPSTONE_EVENT_KEYS": " , "}, "--event-key"),
    ],
)
def test_start_refuses_to_run_without_credentials(
    args: list[str], env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEPSTONE_API_TOKEN", raising=False)
    monkeypatch.delenv("STEPSTONE_EVENT_KEYS", raising=False)
    result = CliRunner().invoke(main, ["start", "tests.server_app:app", *args], env=env)
    assert result.exit_code == 2
    assert says in result.output


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    from stepstone.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        database = f"sqlite:///{tmp_path / 'taken.db'}"
        result = CliRunner().invoke(
            main, ["dev", "tests.server_app:app", "-d", database, "--port", str(port)]
        )
    finally:
        sock.close()
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
