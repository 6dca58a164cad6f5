"""The SDKs' sync payloads (captured from the real apps in golden/), parsed and translated."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from stepstone.function import function_from_config
from stepstone.sdk import register

GOLDEN = Path(__file__).parent / "golden"


def golden(kind: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((GOLDEN / f"register_{kind}.json").read_text())
    return body


def configs(kind: str) -> dict[str, dict[str, Any]]:
    app = register.translate(register.parse_register(golden(kind)))
    return {config["id"]: config for config in app.functions}


@pytest.mark.parametrize(
    ("kind", "sdk", "framework"),
    [("py", "py:v0.5.19", "fast_api"), ("js", "js:v4.24.0", "express")],
)
def test_the_app_of_each_sdk(kind: str, sdk: str, framework: str) -> None:
    app = register.translate(register.parse_register(json.dumps(golden(kind)).encode()))
    assert (app.app_id, app.sdk, app.framework) == (f"{kind}-app", sdk, framework)
    assert app.url.endswith("/api/inngest")
    ids = {config["id"] for config in app.functions}
    assert f"{kind}-app-sequential" in ids and f"{kind}-app-failing-failure" in ids


@pytest.mark.parametrize("kind", ["py", "js"])
def test_a_plain_function_gets_stepstones_default_retries_and_its_url(kind: str) -> None:
    config = configs(kind)[f"{kind}-app-sequential"]
    assert config["retries"] == 4
    assert config["triggers"] == [{"event": "test/sequential"}]
    runtime = config["runtime"]
    assert runtime["type"] == "http" and runtime["app_id"] == f"{kind}-app"
    assert runtime["url"].endswith(f"/api/inngest?fnId={kind}-app-sequential&stepId=step")
    fn = function_from_config(config)
    assert fn.max_attempts == 5 and fn.runtime is not None and fn.runtime.url == runtime["url"]
    assert fn.describe()["runtime"] == runtime
    assert fn.matches("test/sequential", {"name": "test/sequential", "data": {}})


@pytest.mark.parametrize("kind", ["py", "js"])
def test_flow_control_options_are_carried_over(kind: str) -> None:
    found = configs(kind)
    limited = found[f"{kind}-app-limited"]
    assert limited["triggers"] == [{"event": "test/limited", "if": "event.data.ok == true"}]
    assert limited["concurrency"] == [{"limit": 2, "key": "event.data.user"}]
    assert limited["throttle"]["limit"] == 10 and limited["throttle"]["period"] == "1m"
    assert limited["rate_limit"] == {"limit": 100, "period": "1h"}
    assert limited["priority"] == {"run": "event.data.vip ? 60 : 0"}
    assert limited["idempotency"] == "event.data.request"
    assert limited["cancel_on"] == [
        {"event": "test/stop", "if_": "event.data.user == async.data.user"}
    ]
    assert limited["timeouts"] == {"finish": "5m"}
    fn = function_from_config(limited)
    assert fn.flow is not None and fn.timeouts is not None and fn.timeouts.finish == 300
    assert fn.flow.throttle is not None and fn.flow.throttle[1] == 60
    assert fn.matches("test/limited", {"data": {"ok": True}})
    assert not fn.matches("test/limited", {"data": {"ok": False}})
    assert found[f"{kind}-app-batched"]["batch_events"] == {"max_size": 10, "timeout": "5s"}
    debounced = found[f"{kind}-app-debounced"]
    assert debounced["debounce"] == {"period": "10s", "key": "event.data.user"}
    assert debounced["singleton"] == {"mode": "skip", "key": "event.data.user"}
    assert found[f"{kind}-app-scheduled"]["triggers"] == [{"cron": "0 * * * *"}]
    assert found[f"{kind}-app-flaky"]["retries"] == 2


@pytest.mark.parametrize(("kind", "retries"), [("py", 0), ("js", 1)])
def test_on_failure_listens_for_stepstones_failure_event(kind: str, retries: int) -> None:
    failure = configs(kind)[f"{kind}-app-failing-failure"]
    expression = f"event.data.function_id == '{kind}-app-failing'"
    assert failure["triggers"] == [{"event": "stepstone/function.failed", "if": expression}]
    assert failure["retries"] == retries
    fn = function_from_config(failure)
    assert fn.matches("stepstone/function.failed", {"data": {"function_id": f"{kind}-app-failing"}})
    assert not fn.matches("stepstone/function.failed", {"data": {"function_id": "other"}})


def test_cron_timezones_and_jitter() -> None:
    body = golden("js")
    scheduled = next(f for f in body["functions"] if f["id"].endswith("-scheduled"))
    scheduled["triggers"] = [{"cron": "TZ=Europe/Paris 0 9 * * *", "jitter": "30s"}]
    config = configs_of(body)["js-app-scheduled"]
    assert config["triggers"] == [{"cron": "0 9 * * *", "tz": "Europe/Paris", "jitter": 30.0}]


def configs_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    app = register.translate(register.parse_register(body))
    return {config["id"]: config for config in app.functions}


def test_a_malformed_payload_lists_everything_wrong() -> None:
    body = golden("py")
    del body["url"]
    body["functions"][0]["triggers"] = [{"evnt": "x"}]
    del body["functions"][1]["steps"]
    with pytest.raises(register.RegisterError) as caught:
        register.parse_register(body)
    text = str(caught.value)
    assert "url: Field required" in text
    assert "functions[0].triggers[0]" in text
    assert "functions[1].steps: Field required" in text
    assert len(caught.value.problems) >= 3
    with pytest.raises(register.RegisterError, match="not JSON"):
        register.parse_register(b"{nope")
    with pytest.raises(register.RegisterError, match="JSON object"):
        register.parse_register(b"[]")


def test_functions_stepstone_cannot_run_are_refused_with_their_reasons() -> None:
    body = copy.deepcopy(golden("js"))
    functions = body["functions"]
    functions[0]["steps"]["step"]["runtime"]["type"] = "ws"
    functions[1]["triggers"] = [{"event": "x", "expression": "event.data.("}]
    functions[2]["steps"]["step"]["retries"] = {"attempts": 50}
    functions[3]["batchEvents"] = {"maxSize": 5, "timeout": "5s", "if": "event.data.ok"}
    functions[4]["throttle"] = {"limit": 1, "period": "soon"}
    with pytest.raises(register.RegisterError) as caught:
        register.translate(register.parse_register(body))
    problems = caught.value.problems
    text = "\n".join(problems)
    assert "(connect) is not supported" in text
    assert f"function {functions[1]['id']!r}" in text
    assert "retries must be an integer from 0 to 20" in text
    assert "batchEvents.if is not supported" in text
    assert "throttle" in text


def test_an_unknown_function_option_is_refused_by_name() -> None:
    body = golden("js")
    body["functions"][0]["unknownOption"] = True
    with pytest.raises(register.RegisterError, match=r"functions\[0\]\.unknownOption"):
        register.parse_register(body)


def test_the_answers() -> None:
    assert register.register_ok() == {"ok": True, "status": 200, "modified": True, "skipped": False}
    failed = register.register_failed(400, "bad")
    assert failed["status"] == 400 and failed["error"] == "bad"
