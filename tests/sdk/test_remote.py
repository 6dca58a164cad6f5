"""RemoteInvocation against the real SDK apps (FastAPI and Express), with a fake engine."""

from __future__ import annotations

from typing import Any

import httpx

from stepstone import ops
from stepstone.engine.remote import RemoteInvocation
from stepstone.errors import LeaseLostError
from stepstone.function import FunctionDef, function_from_config
from stepstone.ids import hash_step_id
from stepstone.records import StepRecord, StepStatus
from tests.sdk.harness import SdkApp, free_port
from tests.sdk.host import FakeHost, SdkServer, one_invocation


def host(functions: dict[str, FunctionDef], client: httpx.AsyncClient, **kw: Any) -> FakeHost:
    return FakeHost(functions, client, **kw)


class Effects:
    """The app's side effects recorded from now on."""

    def __init__(self, app: SdkApp) -> None:
        self._app = app
        self._start = len(app.effects())

    def lines(self) -> list[str]:
        return self._app.effects()[self._start :]


async def test_sequential_steps(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    effects = Effects(sdk_app)
    result = await host(functions, http_client).run(
        sdk_app.function_id("sequential"), {"name": "test/sequential", "data": {"start": 5}}
    )
    assert result.output == {"sum": 11}
    assert effects.lines() == ["sequential:one", "sequential:two"]
    one, two = result.step("one"), result.step("two")
    assert (one.status, one.output, one.attempts, one.hashed_id) == (
        StepStatus.COMPLETED,
        5,
        1,
        hash_step_id("one"),
    )
    assert (two.status, two.output) == (StepStatus.COMPLETED, 6)
    assert result.invocations == 1


async def test_a_step_that_fails_once_is_retried(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    effects = Effects(sdk_app)
    result = await host(functions, http_client).run(
        sdk_app.function_id("flaky"), {"name": "test/flaky"}
    )
    assert result.output == "ok at attempt 1"
    assert effects.lines() == ["flaky:attempt", "flaky:attempt"]
    step = result.step("flaky")
    assert (step.status, step.attempts) == (StepStatus.COMPLETED, 2)
    retrying = [
        op.step
        for op in result.checkpoints
        if isinstance(op, ops.SaveStep) and op.step.status is StepStatus.RETRYING
    ]
    assert len(retrying) == 1 and retrying[0].error is not None
    assert "first attempt fails" in retrying[0].error["message"]
    assert retrying[0].wake_at is not None
    assert result.invocations == 2


async def test_parallel_steps_are_called_each_on_its_own(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    effects = Effects(sdk_app)
    result = await host(functions, http_client).run(
        sdk_app.function_id("parallel"), {"name": "test/parallel"}
    )
    assert result.output == ["a", "b", "a+b"]
    assert sorted(effects.lines()) == ["parallel:a", "parallel:after", "parallel:b"]
    assert effects.lines()[-1] == "parallel:after"
    assert (result.step("a").detail or {}).get("parallel") is True
    assert (result.step("b").detail or {}).get("parallel") is True
    assert result.step("after").status is StepStatus.COMPLETED


async def test_a_sleep_suspends_the_run(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    effects = Effects(sdk_app)
    result = await host(functions, http_client).run(
        sdk_app.function_id("sleeper"), {"name": "test/sleeper"}
    )
    assert result.output == "after"
    assert effects.lines() == ["sleeper:before", "sleeper:after"]
    nap = result.step("nap")
    assert nap.kind == "sleep" and nap.status is StepStatus.COMPLETED
    sleeping = [
        op.step
        for op in result.checkpoints
        if isinstance(op, ops.SaveStep) and op.step.status is StepStatus.SLEEPING
    ]
    assert len(sleeping) == 1
    assert sleeping[0].wake_at is not None and sleeping[0].started_at is not None
    assert 1.5 < sleeping[0].wake_at - sleeping[0].started_at < 3.0
    assert result.invocations == 2


async def test_wait_for_event_resolved_by_an_event(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    seen: list[StepRecord] = []

    def approve(record: StepRecord) -> dict[str, Any]:
        seen.append(record)
        return {
            "name": "test/approved",
            "data": {"order": 7, "by": "ann"},
            "id": "ev1",
            "ts": 1700000000000,
        }

    result = await host(functions, http_client, on_wait=approve).run(
        sdk_app.function_id("waiter"), {"name": "test/waiter", "data": {"order": 7}}
    )
    assert result.output == {"approved": True, "by": "ann"}
    [record] = seen
    assert record.kind == "wait" and record.status is StepStatus.WAITING
    assert record.detail is not None and record.detail["event"] == "test/approved"
    assert record.detail["if"] == "event.data.order == async.data.order"
    waits = [op for op in result.checkpoints if isinstance(op, ops.RegisterWait)]
    assert [w.event for w in waits] == ["test/approved"]
    assert record.wake_at is not None and record.started_at is not None
    assert 55 < record.wake_at - record.started_at < 65


async def test_wait_for_event_timing_out(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    fake = host(functions, http_client)

    async def run() -> Any:
        return await fake.run(
            sdk_app.function_id("waiter"), {"name": "test/waiter", "data": {"order": 1}}
        )

    # the wait times out: the host moves the step's wake-up into the past
    fake.on_wait = lambda record: None
    original = fake._resolve

    async def expire(steps: dict[str, StepRecord], pending: Any, outcome: ops.Suspended) -> None:
        for hashed, record in list(steps.items()):
            if record.status is StepStatus.WAITING:
                steps[hashed] = StepRecord(**{**record.__dict__, "wake_at": 0.0})
                return
        await original(steps, pending, outcome)

    fake._resolve = expire  # type: ignore[method-assign]
    result = await run()
    assert result.output == {"approved": False}
    assert result.step("approval").status is StepStatus.COMPLETED
    assert any(isinstance(op, ops.ExpireStep) for op in result.checkpoints)


async def test_a_non_retriable_error_fails_the_run(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    effects = Effects(sdk_app)
    result = await host(functions, http_client).run(
        sdk_app.function_id("nonretriable"), {"name": "test/nonretriable"}
    )
    assert isinstance(result.outcome, ops.RunFailed), result.outcome
    assert "this cannot work" in result.outcome.error["message"]
    assert effects.lines() == ["nonretriable:boom"]
    assert result.retries == 0


async def test_a_step_out_of_attempts_is_caught_by_the_function(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    effects = Effects(sdk_app)
    result = await host(functions, http_client).run(
        sdk_app.function_id("catcher"), {"name": "test/catcher"}
    )
    assert effects.lines() == ["catcher:broken"]
    error_name = "ValueError" if sdk_app.kind == "py" else "TypeError"
    assert result.output == f"caught {error_name}: broken for good"
    broken = result.step("broken")
    assert (broken.status, broken.attempts) == (StepStatus.FAILED, 1)
    assert broken.error is not None and broken.error["name"] == error_name


async def test_invoke_starts_the_other_function(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    fake = host(functions, http_client)
    result = await fake.run(sdk_app.function_id("invoker"), {"name": "test/invoker"})
    assert result.output == {"sum": 21}
    assert fake.invoked == [(sdk_app.function_id("sequential"), {"start": 10})]
    call = result.step("call")
    assert call.kind == "invoke" and call.status is StepStatus.COMPLETED
    starts = [op for op in result.checkpoints if isinstance(op, ops.StartInvoke)]
    assert starts[0].step.detail == {"function_id": sdk_app.function_id("sequential")}


async def test_send_event_goes_through_the_event_api(
    sdk_app: SdkApp,
    functions: dict[str, FunctionDef],
    http_client: httpx.AsyncClient,
    sdk_server: SdkServer,
) -> None:
    before = len(sdk_server.events)
    result = await host(functions, http_client).run(
        sdk_app.function_id("sender"), {"name": "test/sender"}
    )
    sent = sdk_server.events[before:]
    assert [e["name"] for e in sent] == ["test/sent"]
    assert sent[0]["data"] == {"from": sdk_app.kind}
    send = result.step("send")
    assert send.status is StepStatus.COMPLETED
    if sdk_app.kind == "js":
        assert result.output == {"ids": [sent[0]["id"]]}
        assert send.kind == "send"
    else:
        assert result.output == [sent[0]["id"]]


async def test_the_run_of_a_function_that_always_fails(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    result = await host(functions, http_client).run(
        sdk_app.function_id("failing"), {"name": "test/failing"}
    )
    assert isinstance(result.outcome, ops.RunFailed), result.outcome
    assert "always fails" in result.outcome.error["message"]
    assert result.retries == 1  # retries: 1 -> 2 attempts


async def test_an_app_that_does_not_answer_is_a_retriable_attempt(
    http_client: httpx.AsyncClient,
) -> None:
    config = {
        "id": "gone",
        "triggers": [{"event": "test/sequential"}],
        "runtime": {"type": "http", "url": f"http://127.0.0.1:{free_port()}/api?fnId=gone"},
    }

    async def emit(op: ops.Checkpoint) -> None:
        raise AssertionError(op)

    outcome = await one_invocation(function_from_config(config), http_client, emit=emit).execute()
    assert isinstance(outcome, ops.RunRetry), outcome
    assert "could not call the app" in outcome.error["message"]


async def test_a_lost_lease_abandons_the_run(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    saved: list[ops.Checkpoint] = []

    async def emit(op: ops.Checkpoint) -> None:
        saved.append(op)
        raise LeaseLostError("another worker has the run")

    fn = functions[sdk_app.function_id("sequential")]
    outcome = await one_invocation(fn, http_client, emit=emit).execute()
    assert isinstance(outcome, ops.Abandoned) and "lease lost" in outcome.reason
    assert len(saved) == 1  # nothing more was called or written


async def test_a_stopped_invocation_starts_no_new_call(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    saved: list[ops.Checkpoint] = []
    effects = Effects(sdk_app)
    invocation: RemoteInvocation

    async def emit(op: ops.Checkpoint) -> None:
        saved.append(op)
        invocation.stop("cancelled")

    invocation = one_invocation(
        functions[sdk_app.function_id("sequential")], http_client, emit=emit
    )
    outcome = await invocation.execute()
    assert outcome == ops.Abandoned("cancelled")
    assert [type(op) for op in saved] == [ops.SaveStep]  # the step in flight was saved
    assert effects.lines() == ["sequential:one"]


async def test_a_parallel_step_that_fails_once_is_retried_on_its_own(
    sdk_app: SdkApp, functions: dict[str, FunctionDef], http_client: httpx.AsyncClient
) -> None:
    effects = Effects(sdk_app)
    result = await host(functions, http_client).run(
        sdk_app.function_id("parallel-flaky"), {"name": "test/parallel-flaky"}
    )
    assert result.output == ["steady", "wobbly", "done"]
    lines = effects.lines()
    assert sorted(lines) == [
        "parallel-flaky:after",
        "parallel-flaky:steady",
        "parallel-flaky:wobbly",
        "parallel-flaky:wobbly",
    ]
    assert lines[-1] == "parallel-flaky:after"  # discovery only after the whole group
    wobbly, steady = result.step("wobbly"), result.step("steady")
    assert (wobbly.status, wobbly.attempts) == (StepStatus.COMPLETED, 2)
    assert (steady.status, steady.attempts) == (StepStatus.COMPLETED, 1)
    assert (wobbly.detail or {}).get("parallel") is True
    assert result.invocations == 2
