"""GET /metrics on dev and start (behind the token) and on a worker's --metrics-port:
scraped around a workload, its counts match the runs made."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from stepstone.server import create_app

from .apps.scale import make_app
from .live_server import LiveServer, wait_for, wait_for_run
from .process import WorkerProcess
from .server_app import build_app

TOKEN = "metrics-token-4r"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(http: httpx.Client) -> Samples:
    answer = http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples) -> Callable[..., float]:
    return lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)


def test_metrics_count_the_runs_of_a_workload(database_url: str) -> None:
    greets, broken, flaky = 6, 3, 2
    with LiveServer(build_app(database_url), dev=True) as live, live.client() as http:
        before = scrape(http)
        run_ids = []
        for name, count in (("test/greet", greets), ("test/broken", broken), ("test/flaky", flaky)):
            ids = http.post("/e/key", json=[{"name": name}] * count).json()["ids"]
            for event_id in ids:
                run_ids += [r["id"] for r in http.get(f"/v1/events/{event_id}").json()["runs"]]
        assert len(run_ids) == greets + broken + flaky
        for run_id in run_ids:
            wait_for_run(http, run_id)
        after = scrape(http)
    d = delta(before, after)
    assert d("stepstone_runs_total", function="greet", status="completed") == greets
    assert d("stepstone_runs_total", function="broken", status="failed") == broken
    assert d("stepstone_runs_total", function="flaky", status="completed") == flaky
    assert d("stepstone_runs_started_total", function="greet") == greets
    assert d("stepstone_events_received_total") == greets + broken + flaky
    # greet's two steps each; flaky's step took three attempts
    steps = "stepstone_step_duration_seconds_count"
    assert d(steps, function="greet", status="completed") == 2 * greets
    assert d(steps, function="broken", status="failed") == broken
    attempts = "stepstone_step_attempts_bucket"
    assert d(attempts, function="flaky", status="completed", le="2.0") == 0
    assert d(attempts, function="flaky", status="completed", le="3.0") == flaky
    assert d("stepstone_step_attempts_sum", function="flaky", status="completed") == 3 * flaky
    assert d("stepstone_run_duration_seconds_count", function="greet", status="completed") == (
        greets
    )
    assert d("stepstone_checkpoint_seconds_count") >= 2 * greets + broken + flaky
    assert d("stepstone_claim_seconds_count") >= 0
    assert value(after, "stepstone_workers") >= 1
    assert value(after, "stepstone_jobs_due") == 0


def test_a_run_cancelled_while_no_worker_holds_it_is_counted(database_url: str) -> None:
    """A sleeping run cancelled through the API is ended by the store, not by a worker:
    the process that cancelled it counts it, once."""
    with LiveServer(build_app(database_url), dev=True) as live, live.client() as http:
        [event_id] = http.post("/e/key", json={"name": "test/nap"}).json()["ids"]
        run_id = wait_for(lambda: http.get(f"/v1/events/{event_id}").json()["runs"])[0]["id"]
        wait_for(lambda: http.get(f"/v1/runs/{run_id}").json()["steps"])  # asleep
        before = scrape(http)
        assert http.post(f"/v1/runs/{run_id}/cancel").status_code in (200, 202)
        wait_for_run(http, run_id, "cancelled")
        cancelled = {"function": "nap", "status": "cancelled"}
        counted = value(before, "stepstone_runs_total", **cancelled) + 1
        wait_for(lambda: value(scrape(http), "stepstone_runs_total", **cancelled) >= counted)
        time.sleep(0.3)  # a second count, were there one, would come by now
        after = scrape(http)
    d = delta(before, after)
    assert d("stepstone_runs_total", function="nap", status="cancelled") == 1
    assert d("stepstone_run_duration_seconds_count", function="nap", status="cancelled") == 1


async def test_the_backlog_is_read_from_the_database(database_url: str) -> None:
    app = build_app(database_url)
    try:
        await app.send([{"name": "test/greet"}] * 4)  # no worker: they wait
        await asyncio.sleep(0.3)
        transport = httpx.ASGITransport(app=create_app(app, dev=True))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            answer = await http.get("/metrics")
        samples = parse(answer.text)
        assert value(samples, "stepstone_jobs_due") == 4
        assert 0.3 <= value(samples, "stepstone_oldest_due_seconds") < 30
    finally:
        await app.close()


def test_metrics_are_behind_the_token_in_start(database_url: str) -> None:
    app = build_app(database_url)
    with LiveServer(app, dev=False, event_keys=["k"], api_token=TOKEN) as live:
        with live.client() as http:
            answer = http.get("/metrics")
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == "Bearer"
            assert http.get("/healthz").status_code == 200  # the probes stay open
        with live.client(TOKEN) as http:
            assert value(scrape(http), "stepstone_workers") >= 1


async def test_a_worker_serves_its_metrics_on_its_port(database_url: str, tmp_path: Path) -> None:
    if database_url == "memory://":
        database_url = f"sqlite:///{tmp_path / 'w.db'}"
    worker = WorkerProcess(
        database_url, tmp_path / "ledger", tmp_path / "logs", extra=("--metrics-port", "0")
    )
    sender = make_app(database_url)
    try:
        await asyncio.to_thread(worker.wait_ready)
        deadline = time.monotonic() + 30
        while not (found := re.search(r"probes +http://0\.0\.0\.0:(\d+)/", worker.log())):
            assert time.monotonic() < deadline, worker.log()
            await asyncio.sleep(0.05)
        ids = await sender.send([{"name": "scale/run", "data": {}}] * 5)
        for event_id in ids:
            [run] = await sender.runs_for_event(event_id)
            assert (await sender.wait_for_run(run.id, timeout=60)).status == "completed"
        url = f"http://127.0.0.1:{found.group(1)}"
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            answer = await http.get("/metrics")
        samples = parse(answer.text)
        done = {"function": "five-steps", "status": "completed"}
        assert value(samples, "stepstone_runs_total", **done) == 5
        assert value(samples, "stepstone_step_duration_seconds_count", **done) == 25
        assert value(samples, "stepstone_workers") == 1
    finally:
        await sender.close()
        assert await asyncio.to_thread(worker.stop) == 0


def _probes_url(worker: WorkerProcess) -> str:
    deadline = time.monotonic() + 30
    while not (found := re.search(r"probes +http://0\.0\.0\.0:(\d+)/", worker.log())):
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.05)
    return f"http://127.0.0.1:{found.group(1)}"


@pytest.mark.slow
async def test_a_run_taken_over_from_a_killed_worker_is_counted(
    shared_database_url: str, tmp_path: Path
) -> None:
    url = shared_database_url
    ledger, logs = tmp_path / "ledger", tmp_path / "logs"
    first = WorkerProcess(url, ledger, logs, lease=1.0)
    second: WorkerProcess | None = None
    sender = make_app(url)
    try:
        await asyncio.to_thread(first.wait_ready)
        # a step long enough to outlast the start of a second worker on a loaded machine
        [event_id] = await sender.send({"name": "scale/slow", "data": {"pause": 6.0}})
        [run] = await sender.runs_for_event(event_id)
        deadline = time.monotonic() + 30
        while (got := await sender.get_run(run.id)) is None or got.status != "running":
            assert time.monotonic() < deadline, first.log()
            await asyncio.sleep(0.02)
        second = WorkerProcess(url, ledger, logs, lease=1.0, extra=("--metrics-port", "0"))
        await asyncio.to_thread(second.wait_ready)
        first.process.kill()  # mid-step: its lease expires, the second worker takes it over
        first.process.wait(10)
        done = await sender.wait_for_run(run.id, timeout=60)
        assert done.status == "completed"
        async with httpx.AsyncClient(base_url=_probes_url(second), timeout=10) as http:
            samples = parse((await http.get("/metrics")).text)
        assert value(samples, "stepstone_runs_taken_over_total") == 1
        assert value(samples, "stepstone_leases_lost_total") == 0
        assert value(samples, "stepstone_runs_total", function="slow-step", status="completed") == 1
    finally:
        await sender.close()
        first.close()
        if second is not None:
            assert await asyncio.to_thread(second.stop) == 0


@given(
    values=st.lists(
        st.one_of(
            st.sampled_from([0.0, 0.001, 0.0025, 1.0, 10.0, 86400.0]),  # on a bound: le holds it
            st.floats(min_value=0, max_value=1e6, allow_nan=False),
        ),
        max_size=40,
    )
)
def test_the_engines_histograms_agree_with_prometheus_clients_own(values: list[float]) -> None:
    """The engine's cheap histogram (metrics._Histogram) reports what prometheus-client's
    Histogram reports for the same observations: buckets, count and sum."""
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.exposition import generate_latest

    from stepstone import metrics

    bounds = (0.001, 0.0025, 1.0, 10.0, 86400.0)
    ours = metrics._Histogram("h_seconds", "test", ["function"], bounds)
    registry = CollectorRegistry()
    theirs = Histogram("h_seconds", "test", ["function"], buckets=bounds, registry=registry)
    for value in values:
        ours.observe(value, ("f",))
        theirs.labels("f").observe(value)

    class Ours:
        def collect(self) -> object:
            yield ours.family()

    mine = CollectorRegistry()
    mine.register(Ours())  # type: ignore[arg-type]

    def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        found = parse(generate_latest(registry).decode())
        return {key: v for key, v in found.items() if not key[0].endswith("_created")}

    expected = samples(registry) if values else {}
    got = samples(mine)
    assert got.keys() == expected.keys()
    for key, number in expected.items():
        assert got[key] == pytest.approx(number), key
