"""Apps written with the official SDKs, run on stepstone: the Python app (FastAPI) and the
npm app (Express) sync to a real stepstone server by PUT, and their functions run from
events sent to it, with each step's side effect counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import stepstone
from stepstone.sdk.signing import parse_signing_key
from stepstone.testing import TestClock
from tests.helpers import make_app
from tests.live_server import LiveServer, wait_for, wait_for_run
from tests.sdk import harness

EVENT_KEY = "sdk-event-key-K3y"
SIGNING_KEY = "signkey-test-" + "a1b2" * 16
API_TOKEN = "sdk-api-token-T0k"
SETUPS = [("py", "dev"), ("js", "dev"), ("py", "start"), ("js", "start")]


@pytest.fixture(
    scope="module",
    params=SETUPS,
    ids=["py-dev-sqlite", "js-dev-sqlite", "py-start-pg", "js-start-pg"],
)
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, harness.SdkApp]]:
    """An SDK app synced to a stepstone server: `stepstone dev` on SQLite (no keys), or as
    `stepstone start` runs it on PostgreSQL, with an event key, an API token and a signing
    key (the app in production mode: calls signed both ways)."""
    kind, mode = request.param
    workdir = tmp_path_factory.mktemp(f"{kind}-{mode}-on-stepstone")
    dropped: list[str] = []
    if mode == "dev":
        database = f"sqlite:///{workdir / 'stepstone.db'}"
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        name = cluster.create_database(template=request.getfixturevalue("postgres_template"))
        dropped.append(name)
        database = cluster.url(name)
    app = make_app(database)

    # native functions beside the SDK app's: each side invokes the other
    @app.function(id="double")
    async def double(ctx: stepstone.Context) -> Any:
        return await ctx.step.run("double", lambda: ctx.event.data["n"] * 2)

    @app.function(id="native-invoker", trigger="native/invoke")
    async def native_invoker(ctx: stepstone.Context) -> Any:
        target = f"{ctx.event.data['kind']}-app-sequential"
        return await ctx.step.invoke("call", function=target, data={"start": 3})

    if mode == "dev":
        server = LiveServer(app, dev=True)
        options: dict[str, Any] = {}
    else:
        app.runtime.signing_key = parse_signing_key(SIGNING_KEY)
        server = LiveServer(
            app, dev=False, event_keys=[EVENT_KEY], api_token=API_TOKEN, signing_key=SIGNING_KEY
        )
        options = {"signing_key": SIGNING_KEY, "extra_env": {"INNGEST_EVENT_KEY": EVENT_KEY}}
    try:
        with server, harness.synced_app(kind, server.url, workdir, **options) as sdk:
            yield server, sdk
    finally:
        for name in dropped:
            request.getfixturevalue("postgres_cluster").drop_database(name)


def _send(client: httpx.Client, name: str, data: dict[str, Any] | None = None) -> str:
    answer = client.post(f"/e/{EVENT_KEY}", json=[{"name": name, "data": data or {}}])
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == 200
    [event_id] = answer.json()["ids"]
    return str(event_id)


def _run_of(client: httpx.Client, event_id: str, function: str) -> str:
    def found() -> str | None:
        runs = client.get(f"/v1/events/{event_id}").json()["runs"]
        ids = [r["id"] for r in runs if r["function_id"] == function]
        return ids[0] if ids else None

    run_id: str = wait_for(found, what=f"a run of {function}")
    return run_id


def _ran(client: httpx.Client, sdk: harness.SdkApp, fn: str, data: Any = None) -> dict[str, Any]:
    event_id = _send(client, f"test/{fn}", data)
    return wait_for_run(client, _run_of(client, event_id, sdk.function_id(fn)))


def _effects(sdk: harness.SdkApp, prefix: str) -> list[str]:
    return [line for line in sdk.effects() if line.startswith(prefix + ":")]


def test_the_sync_publishes_the_apps_functions(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    known = {fn.id for fn in server.app.runtime.registry.all()}
    assert {sdk.function_id("sequential"), sdk.function_id("failing")} <= known


def test_sequential_steps_run_once_each(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "sequential", {"start": 1})
    assert run["status"] == "completed", run
    assert run["output"] == {"sum": 3}
    assert [s["id"] for s in run["steps"]] == ["one", "two"]
    assert _effects(sdk, "sequential") == ["sequential:one", "sequential:two"]


def test_a_step_that_fails_once_is_retried(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "flaky")
    assert run["status"] == "completed", run
    assert run["output"] == "ok at attempt 1"  # the step's own attempt, 0-based
    assert _effects(sdk, "flaky") == ["flaky:attempt", "flaky:attempt"]
    [step] = run["steps"]
    assert step["attempts"] == 2


def test_parallel_steps(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "parallel")
    assert run["status"] == "completed", run
    assert run["output"] == ["a", "b", "a+b"]
    assert sorted(_effects(sdk, "parallel")) == ["parallel:a", "parallel:after", "parallel:b"]


def test_a_durable_sleep(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "sleeper")
    assert run["status"] == "completed", run
    assert run["output"] == "after"
    nap = next(s for s in run["steps"] if s["id"] == "nap")
    assert nap["ended_at"] - nap["started_at"] >= 1.9
    assert _effects(sdk, "sleeper") == ["sleeper:before", "sleeper:after"]


def test_a_wait_resolved_by_a_later_event(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        started = _send(client, "test/waiter", {"order": 7})
        run_id = _run_of(client, started, sdk.function_id("waiter"))
        wait_for_run(client, run_id, "waiting")
        _send(client, "test/approved", {"order": 8, "by": "someone else"})  # no match
        _send(client, "test/approved", {"order": 7, "by": "ann"})
        run = wait_for_run(client, run_id)
    assert run["status"] == "completed", run
    assert run["output"] == {"approved": True, "by": "ann"}


def test_a_non_retriable_error_fails_the_run_at_once(
    running: tuple[LiveServer, harness.SdkApp],
) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "nonretriable")
    assert run["status"] == "failed", run
    assert "this cannot work" in json.dumps(run["error"])
    assert _effects(sdk, "nonretriable") == ["nonretriable:boom"]


def test_a_step_error_caught_by_the_function(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "catcher")
    assert run["status"] == "completed", run
    assert "broken for good" in run["output"]
    assert _effects(sdk, "catcher") == ["catcher:broken"]


def test_an_invoke_of_another_function(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "invoker")
    assert run["status"] == "completed", run
    assert run["output"] == {"sum": 21}


def test_a_native_function_invokes_an_sdk_one(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        event_id = _send(client, "native/invoke", {"kind": sdk.kind})
        run = wait_for_run(client, _run_of(client, event_id, "native-invoker"))
    assert run["status"] == "completed", run
    assert run["output"] == {"sum": 7}


def test_an_sdk_function_invokes_a_native_one(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "invoke-native", {"app": server.app.id, "function": "double"})
    assert run["status"] == "completed", run
    assert run["output"] == 40


def test_send_event_from_a_step(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "sender")
        assert run["status"] == "completed", run
        output = run["output"]
        ids = output["ids"] if isinstance(output, dict) else output
        [sent_id] = ids
        sent = client.get(f"/v1/events/{sent_id}").json()
    assert sent["name"] == "test/sent"


def test_on_failure_runs_when_a_function_fails(
    running: tuple[LiveServer, harness.SdkApp],
) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "failing")
        assert run["status"] == "failed", run
        handler = sdk.function_id("failing") + "-failure"

        def failure_run() -> dict[str, Any] | None:
            found = client.get("/v1/runs", params={"function": handler}).json()["runs"]
            return found[0] if found else None

        first = wait_for(failure_run, what="the on_failure run")
        ended = wait_for_run(client, first["id"])
    assert ended["status"] == "completed", ended
    assert ended["output"] == "handled"


def test_the_runs_are_in_the_dashboards_api(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client(server.token) as client:
        run = _ran(client, sdk, "sequential", {"start": 5})
        again = client.get(f"/v1/runs/{run['id']}").json()
    assert again["function_id"] == sdk.function_id("sequential")
    assert [s["hashed_id"] for s in again["steps"]] == [
        s["hashed_id"] for s in run["steps"]
    ] and all(len(s["hashed_id"]) == 40 for s in again["steps"])


@pytest.mark.parametrize("kind", ["py", "js"])
def test_a_cron_trigger_of_an_sdk_function(kind: str, tmp_path: Path) -> None:
    clock = TestClock(start=1_800_000_000.0 + 60)  # a minute past an hour
    app = make_app(f"sqlite:///{tmp_path / 'cron.db'}", clock=clock)
    with LiveServer(app, dev=True) as server, server.client() as client:
        sdk = harness.start_app(kind, server.url, tmp_path)
        try:
            assert httpx.put(sdk.url, timeout=30).status_code == 200
            scheduled = sdk.function_id("scheduled")

            def ran() -> dict[str, Any] | None:
                # an hour passes each time: "0 * * * *" fires once the worker has taken up
                # the synced function's trigger
                clock.advance(3600)
                found = client.get("/v1/runs", params={"function": scheduled}).json()
                return found["runs"][0] if found["runs"] else None

            run = wait_for_run(client, wait_for(ran, what="the cron run")["id"])
        finally:
            sdk.stop()
    assert run["status"] == "completed", run
    assert run["output"] == "tick"


def test_events_keep_the_meta_the_npm_sdk_sends(
    running: tuple[LiveServer, harness.SdkApp],
) -> None:
    server, sdk = running
    meta = {"sessions": [{"id": "s-1"}], "propagated_sessions": ["s-0"]}
    with server.client(server.token) as client:
        answer = client.post(
            f"/e/{EVENT_KEY}",
            json=[{"name": "test/sequential", "data": {"start": 4}, "meta": meta}],
        )
        assert answer.status_code == 200, answer.text
        [event_id] = answer.json()["ids"]
        assert client.get(f"/v1/events/{event_id}").json()["meta"] == meta
        run = wait_for_run(client, _run_of(client, event_id, sdk.function_id("sequential")))
    assert run["status"] == "completed", run  # both SDKs take the event with its meta
    assert run["output"] == {"sum": 9}


def _most_at_once(sdk: harness.SdkApp, fn: str) -> tuple[int, int]:
    """From the app's ledger: (how many runs held their step, most of them at once)."""
    marks: list[tuple[float, int]] = []
    starts: list[str] = []
    for line in _effects(sdk, fn):
        _, edge, run_id, at = line.split(":")
        marks.append((float(at), 1 if edge == "start" else -1))
        if edge == "start":
            starts.append(run_id)
    assert len(set(starts)) == len(starts), f"a step ran twice: {starts}"
    now = most = 0
    for _, change in sorted(marks):  # an end sorts before a start at the same instant
        now += change
        most = max(most, now)
    return len(starts), most


@pytest.mark.parametrize("fn,limit", [("one-at-a-time", 1), ("two-at-a-time", 2)])
def test_the_concurrency_limit_of_the_sync_payload_holds(
    running: tuple[LiveServer, harness.SdkApp], fn: str, limit: int
) -> None:
    """Five runs sent at once, each holding its step 0.4 s: the worker (100 slots) would run
    them all together; the function's concurrency limit lets `limit` run at once."""
    server, sdk = running
    config = server.app.runtime.registry.get(sdk.function_id(fn)).describe()
    assert [c["limit"] for c in config["concurrency"]] == [limit]
    runs = 5
    with server.client(server.token) as client:
        answer = client.post(
            f"/e/{EVENT_KEY}", json=[{"name": f"test/{fn}", "data": {"hold": 0.4}}] * runs
        )
        assert answer.status_code == 200, answer.text
        ids = [_run_of(client, event_id, sdk.function_id(fn)) for event_id in answer.json()["ids"]]
        ended = [wait_for_run(client, run_id) for run_id in ids]
    assert [run["status"] for run in ended] == ["completed"] * runs, ended
    assert sorted(run["output"] for run in ended) == sorted(ids)
    held, most = _most_at_once(sdk, fn)
    assert held == runs
    assert most == limit
