"""/healthz and /readyz: on dev and start without a token, and on a worker's --metrics-port."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

import stepstone.server.probes as probes
from stepstone.store import migrations

from .live_server import LiveServer
from .process import WorkerProcess
from .server_app import build_app

TOKEN = "health-token-8s"


@pytest.mark.parametrize("dev", [True, False])
def test_probes_answer_without_a_token(database_url: str, dev: bool) -> None:
    app = build_app(database_url)
    options = {} if dev else {"event_keys": ["k"], "api_token": TOKEN}
    with LiveServer(app, dev=dev, **options) as live, live.client() as http:
        if not dev:  # the API itself is closed
            assert http.get("/v1/runs").status_code == 401
        health = http.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ready"}
        assert ready.headers["cache-control"] == "no-store"


def test_readyz_refuses_a_schema_that_lacks_a_migration(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LiveServer(build_app(database_url), dev=True) as live, live.client() as http:
        assert http.get("/readyz").status_code == 200
        known = migrations.queries.migrations

        def newer(dialect: str) -> list[tuple[int, str, str]]:  # a version this code ships
            return [*known(dialect), (9999, "future", "SELECT 1")]

        monkeypatch.setattr(migrations.queries, "migrations", newer)
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert "lacks migrations 9999" in ready.json()["reason"]
        assert http.get("/healthz").status_code == 200  # up, but not ready


def test_readyz_refuses_when_the_database_does_not_answer(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probes, "READY_TIMEOUT", 1.0)
    app = build_app(postgres_url)
    with LiveServer(app, dev=True) as live, live.client() as http:
        assert http.get("/readyz").status_code == 200

        async def no_answer() -> list[int]:
            raise OSError("connection refused")

        store = app.runtime._store
        assert store is not None
        monkeypatch.setattr(store, "pending_migrations", no_answer)
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "the database does not answer"


async def test_readyz_times_out_on_a_database_that_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PostgreSQL address where nothing answers: the probe says so within its timeout."""
    monkeypatch.setattr(probes, "READY_TIMEOUT", 0.5)
    app = build_app("postgresql://nobody@10.255.255.1:5432/none?connect_timeout=30")
    transport = httpx.ASGITransport(app=probes.worker_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
        began = time.monotonic()
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert time.monotonic() - began < 5
        assert (await http.get("/healthz")).status_code == 200


def test_a_worker_answers_probes_on_its_metrics_port(database_url: str, tmp_path: Path) -> None:
    if database_url == "memory://":
        database_url = f"sqlite:///{tmp_path / 'w.db'}"
    worker = WorkerProcess(
        database_url, tmp_path / "ledger", tmp_path / "logs", extra=("--metrics-port", "0")
    )
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 30
        while not (found := re.search(r"probes +http://0\.0\.0\.0:(\d+)/", worker.log())):
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{found.group(1)}", timeout=10) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            assert http.get("/readyz").json() == {"status": "ready"}
            assert http.get("/v1/runs").status_code == 404  # probes only, no API
    finally:
        assert worker.stop() == 0
