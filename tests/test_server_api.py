"""The REST API under /v1 against a real HTTP server with a worker (dev mode: no token)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import stepstone.server
from stepstone.server.openapi import openapi_document

from .live_server import LiveServer, send_one, wait_for_run
from .openapi_check import ResponseChecker, checked_client
from .sdk import harness
from .server_app import build_app

INJECTIONS = [
    "' OR '1'='1",
    "x'; DROP TABLE runs; --",
    '" OR 1=1 --',
    "%' UNION SELECT id, name, data FROM events --",
    "\\'; SELECT * FROM sqlite_master; --",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("api") / "stepstone.db"
    with LiveServer(build_app(f"sqlite:///{path}"), dev=True) as live:
        yield live


CHECKER = ResponseChecker()  # every answer the tests below get is checked against the document


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with checked_client(server.client(), CHECKER) as http:
        yield http


@pytest.fixture(scope="module")
def finished(server: LiveServer) -> dict[str, dict[str, Any]]:
    """One finished run of greet, flaky and broken, by function id."""
    with checked_client(server.client(), CHECKER) as http:
        ids = {
            "greet": send_one(http, "test/greet", {"name": "ada"}),
            "flaky": send_one(http, "test/flaky"),
            "broken": send_one(http, "test/broken", {"message": "no <b>luck</b>"}),
        }
        return {fn: wait_for_run(http, run_id) for fn, run_id in ids.items()}


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    message: str = body["error"]
    return message


# -- functions --------------------------------------------------------------------------------
def test_functions_lists_triggers_and_options(client: httpx.Client) -> None:
    functions = {f["id"]: f for f in client.get("/v1/functions").json()["functions"]}
    assert set(functions) == {
        "greet",
        "nap",
        "flaky",
        "broken",
        "echo",
        "charge",
        "report",
        "hourly",
    }
    assert functions["greet"]["triggers"] == [{"event": "test/greet"}]
    assert functions["flaky"]["retries"] == 3
    assert functions["echo"]["triggers"] == [{"event": "test/echo", "if": "event.name != ''"}]
    assert functions["hourly"]["triggers"] == [{"cron": "0 * * * *", "tz": "Europe/Paris"}]
    assert "concurrency" not in functions["greet"]  # options not set are left out
    charge = functions["charge"]
    assert charge["concurrency"] == [{"limit": 2, "key": "event.data.account", "scope": "fn"}]
    assert charge["throttle"] == {
        "limit": 10,
        "period": 60.0,
        "burst": 1,
        "key": "event.data.account",
    }
    assert charge["cancel_on"] == [
        {"event": "billing/refunded", "if_": "async.data.id == event.data.id", "timeout": None}
    ]
    assert charge["timeouts"] == {"start": None, "finish": 3600.0}


def test_invoke_runs_only_that_function_with_the_data(client: httpx.Client) -> None:
    response = client.post("/v1/functions/greet/invoke", json={"data": {"name": "invoked"}})
    assert response.status_code == 200, response.text
    run = wait_for_run(client, response.json()["run_id"])
    assert (run["function_id"], run["output"]) == ("greet", {"said": "HELLO INVOKED"})
    assert run["event_name"] == "stepstone/function.invoked"
    assert run["events"][0]["data"] == {"name": "invoked"}
    assert "no function has id 'nope'" in _error(client.post("/v1/functions/nope/invoke"), 404)
    message = _error(client.post("/v1/functions/greet/invoke", json={"data": [1]}), 400)
    assert "data" in message and "dictionary" in message


def test_stats_count_runs_by_status_with_duration_percentiles(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    stats = client.get("/v1/functions/broken/stats").json()
    hour, day = stats["windows"]
    assert (hour["window"], len(hour["buckets"]), day["window"], len(day["buckets"])) == (
        "hour",
        12,
        "day",
        24,
    )
    assert hour["counts"]["failed"] >= 1 and hour["complete"] is True
    assert hour["buckets"][-1]["counts"]["failed"] >= 1  # created just now: the last bucket
    assert 0 <= hour["p50"] <= hour["p95"] < 60
    assert sum(b["counts"].get("failed", 0) for b in day["buckets"]) == day["counts"]["failed"]
    assert "no function has id" in _error(client.get("/v1/functions/nope/stats"), 404)


# -- one run ------------------------------------------------------------------------------------
def test_run_has_steps_outputs_history_and_event(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    run = client.get(f"/v1/runs/{finished['greet']['id']}").json()
    assert run["status"] == "completed"
    assert run["function_id"] == "greet"
    assert run["output"] == {"said": "HELLO ADA"}
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["say-hello"]["output"] == {"greeting": "hello ada"}
    assert steps["shout"]["output"] == "HELLO ADA"
    assert steps["shout"]["kind"] == "run"
    assert steps["shout"]["attempts"] == 1
    assert steps["shout"]["started_at"] <= steps["shout"]["ended_at"]
    kinds = [h["kind"] for h in run["history"]]
    assert kinds[0] == "queued" and kinds[-1] == "completed"
    [event] = run["events"]
    assert event["id"] == run["event_ids"][0]
    assert event["name"] == "test/greet" and event["data"] == {"name": "ada"}


def test_run_shows_attempts_and_errors(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    flaky = client.get(f"/v1/runs/{finished['flaky']['id']}").json()
    step = flaky["steps"][0]
    assert (step["id"], step["status"], step["attempts"], step["output"]) == (
        "unsteady",
        "completed",
        3,
        3,
    )
    retries = [h for h in flaky["history"] if h["kind"] == "step.retrying"]
    assert [r["data"]["error"]["message"] for r in retries] == [
        "attempt 1 failed",
        "attempt 2 failed",
    ]
    # each failed attempt keeps its own stack (the step keeps only its latest error)
    assert all("Traceback" in r["data"]["error"]["stack"] for r in retries)
    broken = client.get(f"/v1/runs/{finished['broken']['id']}").json()
    assert broken["status"] == "failed"
    assert broken["error"]["message"] == "no <b>luck</b>"
    assert broken["steps"][0]["error"]["name"] == "NonRetriableError"


@pytest.mark.parametrize("run_id", ["01NOSUCHRUN0000000000000000", *INJECTIONS])
def test_unknown_run_is_404(client: httpx.Client, run_id: str) -> None:
    assert "no run has id" in _error(client.get(f"/v1/runs/{run_id}"), 404)


# -- listing runs -------------------------------------------------------------------------------
def test_list_runs_filters_by_function_and_status(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    runs = client.get("/v1/runs", params={"function": "broken"}).json()["runs"]
    assert finished["broken"]["id"] in [r["id"] for r in runs]
    assert {r["function_id"] for r in runs} == {"broken"}
    failed = client.get("/v1/runs", params={"status": "failed"}).json()["runs"]
    assert finished["broken"]["id"] in [r["id"] for r in failed]
    assert {r["status"] for r in failed} == {"failed"}
    assert "output" not in failed[0]  # lists carry summaries; the run itself has the output


def test_list_runs_pages_with_cursor(client: httpx.Client) -> None:
    started = [send_one(client, "test/echo", {"n": n}) for n in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"function": "echo", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/runs", params=params).json()
        assert len(page["runs"]) <= 2
        seen += [r["id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert set(started) <= set(seen)
    assert seen == sorted(seen, reverse=True)  # newest first


def test_list_runs_by_creation_time(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    created = finished["greet"]["created_at"]
    ids = lambda params: [r["id"] for r in client.get("/v1/runs", params=params).json()["runs"]]  # noqa: E731
    assert finished["greet"]["id"] in ids({"created_after": str(created - 1)})
    assert finished["greet"]["id"] not in ids({"created_after": str(created + 3600)})
    iso = datetime.fromtimestamp(created + 3600, UTC).isoformat().replace("+00:00", "Z")
    assert finished["greet"]["id"] in ids({"created_before": iso, "limit": "1000"})
    assert ids({"created_before": "2000-01-01T00:00:00"}) == []


def test_list_runs_by_event_name_pattern_and_cel_over_the_event(client: httpx.Client) -> None:
    acme = send_one(client, "billing/charge", {"account": "acme", "amount": 5})
    other = send_one(client, "billing/charge", {"account": "other", "amount": 7})
    for run_id in (acme, other):
        wait_for_run(client, run_id)

    def found(**query: str) -> list[str]:
        response = client.get("/v1/runs", params={"limit": "1000", **query})
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["runs"]]

    assert found(event="billing/charge") == [other, acme]
    assert found(event="billing/*") == [other, acme]
    assert found(event="bill*arge", function="charge") == [other, acme]
    assert found(event="billing") == []
    assert found(**{"if": 'event.data.account == "acme"'}) == [acme]
    assert found(**{"if": "event.data.amount > 6", "event": "billing/*"}) == [other]
    run = client.get("/v1/runs", params={"event": "billing/charge", "limit": "1"}).json()
    assert run["runs"][0]["event_name"] == "billing/charge" and run["next_cursor"] == other
    message = _error(client.get("/v1/runs", params={"if": "event.data. =="}), 400)
    assert "the runs' filter `if`: the CEL expression does not compile" in message


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_in_function_filter_finds_nothing(
    client: httpx.Client, finished: dict[str, dict[str, Any]], value: str
) -> None:
    response = client.get("/v1/runs", params={"function": value})
    assert response.status_code == 200, response.text
    assert response.json()["runs"] == []


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_in_cursor_is_only_compared(
    client: httpx.Client, finished: dict[str, dict[str, Any]], value: str
) -> None:
    # a cursor is a run id: the page holds the runs whose ids sort before it, nothing else
    response = client.get("/v1/runs", params={"cursor": value})
    assert response.status_code == 200, response.text
    assert all(run["id"] < value for run in response.json()["runs"])
    assert finished["greet"]["id"] in [r["id"] for r in client.get("/v1/runs").json()["runs"]]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"status": "complete"}, "status must be one of queued, running"),
        ({"status": INJECTIONS[0]}, "status must be one of"),
        ({"limit": "0"}, "limit must be an integer from 1 to 1000"),
        ({"limit": "1001"}, "limit must be an integer from 1 to 1000"),
        ({"limit": "ten"}, "limit must be an integer"),
        ({"limit": INJECTIONS[1]}, "limit must be an integer"),
        ({"created_after": "yesterday"}, "created_after must be seconds since the epoch"),
        ({"created_before": INJECTIONS[2]}, "created_before must be seconds"),
        ({"created_after": "nan"}, "created_after must be"),
        ({"staus": "failed"}, "unknown query parameter(s) staus"),
    ],
)
def test_list_runs_refuses_bad_filters(
    client: httpx.Client, params: dict[str, str], says: str
) -> None:
    assert says in _error(client.get("/v1/runs", params=params), 400)


def test_repeated_query_parameter_is_refused(client: httpx.Client) -> None:
    assert "once" in _error(client.get("/v1/runs?status=failed&status=completed"), 400)


# -- events ---------------------------------------------------------------------------------------
def test_event_shows_the_runs_it_started(client: httpx.Client) -> None:
    response = client.post("/v1/events", json={"name": "test/greet", "data": {"name": "bo"}})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == 200
    [event_id] = body["ids"]
    event = client.get(f"/v1/events/{event_id}").json()
    assert (event["name"], event["data"]) == ("test/greet", {"name": "bo"})
    [run] = event["runs"]
    assert run["function_id"] == "greet"
    assert event["run_ids"] == [run["id"]]
    assert wait_for_run(client, run["id"])["output"] == {"said": "HELLO BO"}


@pytest.mark.parametrize("event_id", ["order/42", "line\nbreak", "tab\there", " spaced "])
def test_an_event_is_found_by_any_id_its_sender_gave(client: httpx.Client, event_id: str) -> None:
    sent = client.post("/v1/events", json={"name": "test/any", "id": event_id})
    assert sent.json()["ids"] == [event_id]
    got = client.get(f"/v1/events/{quote(event_id, safe='')}")
    assert got.status_code == 200, got.text
    assert got.json()["id"] == event_id


def test_event_without_functions_started_no_run(client: httpx.Client) -> None:
    [event_id] = client.post("/v1/events", json={"name": "nobody/listens"}).json()["ids"]
    assert client.get(f"/v1/events/{event_id}").json()["runs"] == []


@pytest.mark.parametrize("count", [4, 5])
def test_list_events_filters_by_name_and_pages(client: httpx.Client, count: int) -> None:
    name = f"test/paged-{count}"
    sent = client.post("/v1/events", json=[{"name": name, "data": {"n": n}} for n in range(count)])
    ids = sent.json()["ids"]
    seen: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        params = {"name": name, "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/events", params=params).json()
        assert {e["name"] for e in page["events"]} == {name}
        seen += [e["id"] for e in page["events"]]
        sizes.append(len(page["events"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)  # one batch shares a receive time: no event is skipped
    assert sizes == ([2, 2] if count == 4 else [2, 2, 1])  # the last page says it is the last


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("name", ["name", "cursor"])
def test_injection_in_event_filters_finds_nothing(
    client: httpx.Client, name: str, value: str
) -> None:
    client.post("/v1/events", json={"name": "test/any"})
    response = client.get("/v1/events", params={name: value})
    assert response.status_code == 200, response.text
    if name == "name":
        assert response.json()["events"] == []
    else:  # an unknown cursor starts from the newest event, like no cursor
        assert response.json()["events"]


@pytest.mark.parametrize("event_id", ["nope", *INJECTIONS])
def test_unknown_event_is_404(client: httpx.Client, event_id: str) -> None:
    assert "no event has id" in _error(client.get(f"/v1/events/{event_id}"), 404)


def test_list_events_refuses_bad_input(client: httpx.Client) -> None:
    assert "limit" in _error(client.get("/v1/events", params={"limit": "-1"}), 400)
    assert "unknown query parameter" in _error(client.get("/v1/events?run=1"), 400)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "the body is empty"),
        (b'"just a string"', "expected an Event, a dict or a list"),
        (b"[]", "no events"),
        (b'{"data": {}}', "'name' is required"),
        (b'{"name": 42}', "'name' is required and must be a non-empty string"),
        (b'{"name": "a", "data": [1, 2]}', "'data' must be a JSON object"),
        (b'{"name": "a", "ts": "yesterday"}', "'ts' must be milliseconds"),
        (b'{"name": "a", "colour": "red"}', "unknown field(s) colour"),
        (b'{"name": "stepstone/function.failed"}', "reserved"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_send_refuses_bad_events(client: httpx.Client, body: bytes, says: str) -> None:
    assert says in _error(client.post("/v1/events", content=body), 400)


# -- cancel and rerun ------------------------------------------------------------------------------
def test_cancel_a_sleeping_run(client: httpx.Client) -> None:
    run_id = send_one(client, "test/nap")
    run = wait_for_run(client, run_id, "sleeping")
    assert {s["id"]: s["kind"] for s in run["steps"]} == {"before": "run", "wait": "sleep"}
    wait = next(s for s in run["steps"] if s["id"] == "wait")
    assert wait["status"] == "sleeping" and wait["wake_at"] > time.time() + 3000
    response = client.post(f"/v1/runs/{run_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json() == {"run_id": run_id, "cancel_requested": True}
    assert wait_for_run(client, run_id)["status"] == "cancelled"
    assert "already ended (cancelled)" in _error(client.post(f"/v1/runs/{run_id}/cancel"), 409)


def test_a_cancelled_run_closes_its_sleep(client: httpx.Client) -> None:
    run_id = send_one(client, "test/nap")
    wait_for_run(client, run_id, "sleeping")
    client.post(f"/v1/runs/{run_id}/cancel")
    run = wait_for_run(client, run_id)
    wait = next(s for s in run["steps"] if s["id"] == "wait")
    assert (wait["status"], wait["ended_at"]) == ("cancelled", run["ended_at"])


def test_bulk_cancels_and_reruns_each_run_with_its_own_outcome(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    napping = [send_one(client, "test/nap") for _ in range(2)]
    for run_id in napping:
        wait_for_run(client, run_id, "sleeping")
    done = finished["greet"]["id"]
    response = client.post(
        "/v1/runs/bulk", json={"action": "cancel", "run_ids": [*napping, done, "nope"]}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["run_id"], r["ok"]) for r in results] == [
        (napping[0], True),
        (napping[1], True),
        (done, False),
        ("nope", False),
    ]
    assert "already ended (completed)" in results[2]["error"]
    assert "no run has id 'nope'" in results[3]["error"]
    for run_id in napping:
        assert wait_for_run(client, run_id)["status"] == "cancelled"
    rerun = client.post("/v1/runs/bulk", json={"action": "rerun", "run_ids": [done]}).json()
    [item] = rerun["results"]
    assert item["ok"] and wait_for_run(client, item["new_run_id"])["status"] == "completed"
    too_many = {"action": "cancel", "run_ids": ["x"] * 101}
    assert "at most 100 items" in _error(client.post("/v1/runs/bulk", json=too_many), 400)
    assert "action" in _error(client.post("/v1/runs/bulk", json={"run_ids": ["x"]}), 400)


def test_cancel_unknown_run_is_404(client: httpx.Client) -> None:
    assert "no run has id" in _error(client.post("/v1/runs/nope/cancel"), 404)


def test_rerun_starts_a_new_run_with_the_same_event(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    old = finished["greet"]
    response = client.post(f"/v1/runs/{old['id']}/rerun")
    assert response.status_code == 200, response.text
    new_id = response.json()["run_id"]
    assert new_id != old["id"] and response.json()["rerun_of"] == old["id"]
    new = wait_for_run(client, new_id)
    assert new["event_ids"] == old["event_ids"]
    assert new["output"] == old["output"]
    assert any(h["kind"] == "rerun" and h["data"] == {"of": old["id"]} for h in new["history"])


def test_rerun_from_a_step_keeps_the_steps_before_it(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    old = client.get(f"/v1/runs/{finished['greet']['id']}").json()
    response = client.post(f"/v1/runs/{old['id']}/rerun", json={"from_step": "shout"})
    assert response.status_code == 200, response.text
    new = wait_for_run(client, response.json()["run_id"])
    old_steps = {s["id"]: s for s in old["steps"]}
    new_steps = {s["id"]: s for s in new["steps"]}
    assert new_steps["say-hello"]["started_at"] == old_steps["say-hello"]["started_at"]  # kept
    assert new_steps["shout"]["started_at"] > old_steps["shout"]["started_at"]  # run again


def test_a_rerun_from_a_step_says_which_steps_it_kept_and_from_which_run(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    old = finished["greet"]
    body = {"from_step": "shout"}
    new_id = client.post(f"/v1/runs/{old['id']}/rerun", json=body).json()["run_id"]
    new = wait_for_run(client, new_id)
    assert new["rerun_of"] == old["id"] and new["reruns"] == []
    assert {s["id"]: s["kept_from"] for s in new["steps"]} == {
        "say-hello": old["id"],
        "shout": None,
    }
    assert new_id in client.get(f"/v1/runs/{old['id']}").json()["reruns"]
    assert client.get(f"/v1/runs/{old['id']}").json()["rerun_of"] is None


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"from_step": "nope"}, 400, "has no step 'nope'; its steps are say-hello, shout"),
        ({"from_step": 3}, 400, "from_step must be a step id"),
        ({"from": "shout"}, 400, "unknown field(s) from"),
        (["shout"], 400, "must be a JSON object"),
        (b"{oops", 400, "not valid JSON"),
    ],
)
def test_rerun_refuses_bad_input(
    client: httpx.Client,
    finished: dict[str, dict[str, Any]],
    body: Any,
    status: int,
    says: str,
) -> None:
    path = f"/v1/runs/{finished['greet']['id']}/rerun"
    response = (
        client.post(path, content=body) if isinstance(body, bytes) else client.post(path, json=body)
    )
    assert says in _error(response, status)


def test_rerun_unknown_run_is_404(client: httpx.Client) -> None:
    assert "no run has id" in _error(client.post("/v1/runs/nope/rerun"), 404)


# -- the rest ---------------------------------------------------------------------------------
def test_unknown_paths_and_methods_answer_json(client: httpx.Client) -> None:
    assert "nothing is served at GET /v1/nope" in _error(client.get("/v1/nope"), 404)
    assert "DELETE is not allowed" in _error(client.delete("/v1/runs"), 405)
    assert "GET is not allowed" in _error(client.get("/e/key"), 405)


def test_openapi_describes_every_endpoint(server: LiveServer, client: httpx.Client) -> None:
    from starlette.routing import Route

    doc = client.get("/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    served: set[tuple[str, str]] = set()
    asgi = server._server.config.app
    for route in asgi.routes:  # type: ignore[attr-defined]
        # (/e and /e/ only say that a key is missing, or take keyless events in dev mode)
        if isinstance(route, Route) and route.path.startswith(("/v1", "/e/{")):
            # an OpenAPI path names its parameters without starlette's converters (`:path`)
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path).replace("{key}", "{event_key}")
            served |= {(path, m.lower()) for m in route.methods or () if m != "HEAD"}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, ops in doc["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path)), path
            assert "200" in op["responses"]
    assert openapi_document("x")["info"]["title"] == "stepstone API (x)"


def test_dashboard_is_served_with_a_strict_content_policy(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    # relative: the page may be mounted under a sub-path
    assert '<script type="module" src="static/app.js"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    static = Path(stepstone.server.__file__).parent / "static"
    modules = sorted(p.relative_to(static).as_posix() for p in static.rglob("*.js"))
    assert len(modules) >= 10 and "js/pages/runs.js" in modules
    for asset in ["style.css", *modules]:
        answer = client.get(f"/static/{asset}")
        assert answer.status_code == 200, asset
        if asset.endswith(".js"):  # a module script needs a JavaScript type
            assert answer.headers["content-type"].startswith("text/javascript"), asset
            # text is set as text: nothing parses markup
            assert not re.search(
                r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", answer.text
            ), asset


def test_health(client: httpx.Client) -> None:
    assert client.get("/health").json() == {
        "status": "ok",
        "app": "served",
        "dev": True,
        "auth": False,
    }


def test_pages_of_other_sites_cannot_drive_the_api(
    client: httpx.Client, finished: dict[str, dict[str, Any]]
) -> None:
    run_id = finished["greet"]["id"]
    cross = {"sec-fetch-site": "cross-site"}
    message = _error(client.post(f"/v1/runs/{run_id}/rerun", headers=cross), 403)
    assert message == "the API refuses requests made by pages of other sites"
    assert _error(client.get("/v1/runs", headers=cross), 403)
    same = {"sec-fetch-site": "same-origin"}
    assert client.get("/v1/runs", headers=same).status_code == 200


async def test_an_unexpected_error_is_a_500_without_details(tmp_path: Path) -> None:
    from stepstone.server import create_app

    app = build_app(f"sqlite:///{tmp_path / 'err.db'}")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    app.list_runs = broken  # type: ignore[method-assign]
    transport = httpx.ASGITransport(app=create_app(app, dev=True), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        response = await http.get("/v1/runs")
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal error; the server's log has the details",
        "status": 500,
    }


def test_synced_sdk_apps_are_listed_and_synced_again(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    sdk = harness.start_app(
        "py", server.url, tmp_path, app_id="api-py", extra_env={"SDK_TEST_FUNCTIONS": "sequential"}
    )
    try:
        assert httpx.put(sdk.url, timeout=30).status_code == 200
        [app] = [a for a in client.get("/v1/apps").json()["apps"] if a["id"] == "api-py"]
        assert app["url"] == sdk.url and app["sdk"].startswith("py:") and app["error"] is None
        assert app["functions"] == ["api-py-sequential"]
        again = client.post("/v1/apps/sync", json={"app_id": "api-py"})
        assert again.json() == {"app_id": "api-py", "synced": True, "error": None}
    finally:
        sdk.stop()
    gone = client.post("/v1/apps/sync", json={"app_id": "api-py"}).json()
    assert gone["synced"] is False and "could not reach" in gone["error"]
    # only an app that synced before, at its own URL: the server calls nothing else
    assert "no app 'elsewhere'" in _error(
        client.post("/v1/apps/sync", json={"app_id": "elsewhere"}), 404
    )
    assert _error(client.post("/v1/apps/sync", json={"url": "http://10.0.0.1/"}), 400)


def test_every_operation_answered_as_its_document_says(
    client: httpx.Client, request: pytest.FixtureRequest
) -> None:
    """Every answer above was checked against the document (CHECKER); this one asks that
    each operation's 200 was among them, so that no endpoint goes unchecked."""
    options = request.config.option
    if options.keyword or options.markexpr or any("::" in a for a in request.config.args):
        pytest.skip("needs the answers of the whole module: run it without -k, -m or ::")
    assert client.post("/e/any-key", json={"name": "test/greet"}).status_code == 200
    assert client.get("/v1/openapi.json").status_code == 200
    documented = {
        (method, path, "200")
        for path, ops in CHECKER.doc["paths"].items()
        for method in ops
        if path != "/v1/openapi.json"  # its body is the document itself
    }
    assert documented - CHECKER.checked == set()


def test_a_nul_in_a_bulk_run_id_is_refused(client: httpx.Client) -> None:
    """PostgreSQL text cannot hold NUL: a run id with one is a 400, on every store alike."""
    body = {"action": "cancel", "run_ids": ["ok", "bad\x00id"]}
    assert "NUL" in _error(client.post("/v1/runs/bulk", json=body), 400)
