"""The call protocol: requests as the SDKs validate them, answers as they send them.

The golden answers (golden/answers_*.json) were captured from the real SDK apps by
tests/sdk/capture_golden.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from stepstone.ids import hash_step_id
from stepstone.sdk import protocol

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_800_000_000.0


def answers(kind: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((GOLDEN / f"answers_{kind}.json").read_text())
    return items


def parse(item: dict[str, Any]) -> protocol.Answer:
    return protocol.parse_answer(item["status"], item["headers"], item["body"].encode(), now=NOW)


def first(kind: str, function: str, *, status: int, step: str = "step") -> dict[str, Any]:
    for item in answers(kind):
        if (
            item["function"] == f"{kind}-app-{function}"
            and item["status"] == status
            and (step == "*" or item["step_id"] == step)
        ):
            return item
    raise AssertionError(f"no {status} answer of {function} in answers_{kind}.json")


def ops_of(item: dict[str, Any]) -> list[protocol.AnyOp]:
    answer = parse(item)
    assert isinstance(answer, protocol.Ops), answer
    return answer.ops


def test_the_call_request_body() -> None:
    request = protocol.CallRequest(
        run_id="R1",
        events=[{"name": "shop/x", "data": None, "id": "E1", "ts": 1.7e12, "user": None}],
        steps={
            "h1": protocol.memo_data(5),
            "h2": protocol.memo_error({"name": "E", "message": "m"}),
        },
        stack=["h1", "h2"],
        attempt=2,
        max_attempts=5,
        disable_immediate_execution=True,
    )
    body = request.body()
    assert body["event"] == {"name": "shop/x", "data": {}, "id": "E1", "ts": 1700000000000}
    assert body["events"] == [body["event"]]
    assert body["steps"] == {
        "h1": {"data": 5},
        "h2": {"error": {"name": "E", "message": "m", "stack": ""}},
    }
    assert body["ctx"] == {
        "run_id": "R1",
        "attempt": 2,
        "max_attempts": 5,
        "disable_immediate_execution": True,
        "use_api": False,
        "stack": {"stack": ["h1", "h2"], "current": 1},
    }
    assert "fn_id" not in body["ctx"]  # keeps the npm SDK's checkpointing off
    assert body["use_api"] is False and body["version"] == 2


def test_stepstones_lifecycle_events_go_by_the_sdks_names() -> None:
    invoked = protocol.event_payload({"name": "stepstone/function.invoked", "data": {"a": 1}})
    assert invoked["name"] == "inngest/function.invoked"
    assert protocol.event_payload({"name": "shop/x"})["name"] == "shop/x"
    assert protocol.from_sdk_event_name("inngest/function.failed") == "stepstone/function.failed"


def test_the_step_url() -> None:
    url = "http://h:1/api/inngest?fnId=app-fn&stepId=step"
    assert protocol.step_url(url, "abc") == "http://h:1/api/inngest?fnId=app-fn&stepId=abc"
    assert protocol.step_url("http://h/x", "step") == "http://h/x?stepId=step"


@pytest.mark.parametrize(
    ("value", "delay"),
    [
        ("30", 30.0),
        ("0", 1.0),
        ("999999", 86400.0),
        (datetime.fromtimestamp(NOW + 90, UTC).isoformat().replace("+00:00", "Z"), 90.0),
        (datetime.fromtimestamp(NOW + 7, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"), 7.0),
        (format_datetime(datetime.fromtimestamp(NOW + 120, UTC), usegmt=True), 120.0),
        (datetime.fromtimestamp(NOW - 60, UTC).isoformat(), 1.0),
    ],
)
def test_retry_after_forms_are_clamped(value: str, delay: float) -> None:
    assert protocol.parse_retry_after(value, now=NOW) == pytest.approx(NOW + delay)


def test_a_retry_after_that_cannot_be_read() -> None:
    with pytest.raises(protocol.ProtocolError, match="Retry-After"):
        protocol.parse_retry_after("soon", now=NOW)


@pytest.mark.parametrize("kind", ["py", "js"])
def test_golden_done_and_step_run(kind: str) -> None:
    done = parse(first(kind, "sequential", status=200))
    assert done == protocol.Done({"sum": 11})
    [op] = ops_of(first(kind, "sequential", status=206))
    assert isinstance(op, protocol.StepRun)
    assert (op.id, op.step_id, op.data) == (hash_step_id("one"), "one", 5)


@pytest.mark.parametrize("kind", ["py", "js"])
def test_golden_step_error_and_failed(kind: str) -> None:
    [error] = ops_of(first(kind, "flaky", status=206))
    assert isinstance(error, protocol.StepError)
    assert error.error["message"] == "the first attempt fails"
    assert error.error["name"] == ("RuntimeError" if kind == "py" else "Error")
    [failed] = ops_of(first(kind, "catcher", status=206))
    assert isinstance(failed, protocol.StepFailed) and failed.step_id == "broken"


@pytest.mark.parametrize("kind", ["py", "js"])
def test_golden_parallel_steps_are_planned(kind: str) -> None:
    planned = ops_of(first(kind, "parallel", status=206))
    assert [type(op) for op in planned] == [protocol.StepPlanned, protocol.StepPlanned]
    assert [op.step_id for op in planned] == ["a", "b"]


@pytest.mark.parametrize("kind", ["py", "js"])
def test_golden_sleep_wait_and_invoke(kind: str) -> None:
    sleeps = [
        op
        for item in answers(kind)
        if item["function"] == f"{kind}-app-sleeper" and item["status"] == 206
        for op in ops_of(item)
        if isinstance(op, protocol.Sleep)
    ]
    [sleep] = sleeps
    if kind == "js":  # a duration: "2s"
        assert sleep.until == NOW + 2
    else:  # an ISO wake time
        assert sleep.until < NOW
    [wait] = ops_of(first(kind, "waiter", status=206))
    assert isinstance(wait, protocol.WaitForEvent)
    assert (wait.event, wait.timeout) == ("test/approved", 60.0)
    assert wait.if_ == "event.data.order == async.data.order"
    [invoke] = ops_of(first(kind, "invoker", status=206))
    assert isinstance(invoke, protocol.InvokeFunction)
    assert (invoke.function_id, invoke.data) == (f"{kind}-app-sequential", {"start": 10})


@pytest.mark.parametrize("kind", ["py", "js"])
def test_golden_send_event(kind: str) -> None:
    [send] = ops_of(first(kind, "sender", status=206))
    assert isinstance(send, protocol.StepRun) and send.step_id == "send"
    assert send.is_send is (kind == "js")


def test_golden_non_retriable_errors() -> None:
    py = parse(first("py", "nonretriable", status=500))
    assert isinstance(py, protocol.CallFailed) and not py.retriable
    assert (py.error["name"], py.error["message"]) == ("NonRetriableError", "this cannot work")
    js_step = protocol.parse_answer(**_raw(first("js", "nonretriable", status=206)), now=NOW)
    assert isinstance(js_step, protocol.Ops) and js_step.no_retry
    assert isinstance(js_step.ops[0], protocol.StepFailed)
    js = parse(first("js", "nonretriable", status=400))
    assert isinstance(js, protocol.CallFailed) and not js.retriable and js.status == 400


def _raw(item: dict[str, Any]) -> dict[str, Any]:
    return {"status": item["status"], "headers": item["headers"], "body": item["body"].encode()}


@pytest.mark.parametrize(
    ("status", "headers", "retriable"),
    [
        (500, {}, True),
        (500, {"X-Inngest-No-Retry": "true"}, False),
        (400, {}, False),
        (400, {"X-Inngest-No-Retry": "false"}, True),
        (401, {}, True),
        (422, {}, False),
    ],
)
def test_whole_call_errors(status: int, headers: dict[str, str], retriable: bool) -> None:
    answer = protocol.parse_answer(status, headers, b'{"message": "no"}', now=NOW)
    assert isinstance(answer, protocol.CallFailed)
    assert (answer.retriable, answer.error["message"], answer.status) == (retriable, "no", status)


def test_a_retry_after_on_an_error() -> None:
    answer = protocol.parse_answer(500, {"Retry-After": "12"}, b"oops", now=NOW)
    assert isinstance(answer, protocol.CallFailed) and answer.retry_at == NOW + 12
    assert answer.error["message"] == "oops"


def test_answers_stepstone_cannot_read_are_not_retriable() -> None:
    for body in (
        b"[]",
        b"{}",
        b'[{"id": "x", "op": "AIGateway", "userland": {"id": "ai"}}]',
        b"[{",
    ):
        answer = protocol.parse_answer(206, {}, body, now=NOW)
        assert isinstance(answer, protocol.CallFailed) and not answer.retriable, body
    unknown = protocol.parse_answer(
        206, {}, b'[{"id": "x", "op": "Gateway", "userland": {"id": "g"}}]', now=NOW
    )
    assert isinstance(unknown, protocol.CallFailed)
    assert "op 'Gateway' (step 'g'), which stepstone does not support" in unknown.error["message"]
    missing = protocol.parse_answer(
        206, {}, b'[{"id": "x", "op": "StepNotFound", "name": "s"}]', now=NOW
    )
    assert (
        isinstance(missing, protocol.CallFailed)
        and "renamed or removed" in missing.error["message"]
    )


def test_repeated_step_ids_and_run_complete() -> None:
    body = [
        {
            "id": hash_step_id("loop:2"),
            "op": "StepRun",
            "data": 1,
            "userland": {"id": "loop", "index": 2},
        },
        {"id": "x", "op": "RunComplete", "data": {"done": True}},
    ]
    answer = protocol.parse_answer(206, {}, json.dumps(body).encode(), now=NOW)
    assert isinstance(answer, protocol.Ops)
    run, complete = answer.ops
    assert isinstance(run, protocol.StepRun) and run.step_id == "loop:2"
    assert isinstance(complete, protocol.RunComplete) and complete.data == {"done": True}


def test_a_streamed_answer_is_unwrapped() -> None:
    inner = json.dumps({"status": 200, "body": json.dumps({"x": 1}), "headers": {}})
    assert protocol.parse_answer(201, {}, (b"   " + inner.encode()), now=NOW) == protocol.Done(
        {"x": 1}
    )


def test_no_answer_is_a_retriable_attempt() -> None:
    failed = protocol.no_answer("timed out")
    assert failed.retriable and failed.status is None
