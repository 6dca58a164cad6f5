"""Unit tests of the pure parts: retry decisions, durations, the JSON round trip, the
executor against a fake host (no database), and a worker built on a Runtime, no App."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stepstone
from stepstone import ops
from stepstone.clock import Clock
from stepstone.durations import parse_duration
from stepstone.engine.persist import RunWriter
from stepstone.engine.worker import Worker
from stepstone.errors import ConfigError, SerializationError
from stepstone.executor import Invocation, InvocationInput
from stepstone.function import build_function
from stepstone.ids import encode_ulid, hash_step_id
from stepstone.jsontext import compact_encoder
from stepstone.limits import Limits
from stepstone.records import Event, RunStatus, StepRecord, StepStatus
from stepstone.retry import DEFAULT_SCHEDULE, MAX_JITTER, decide_retry, default_backoff
from stepstone.runtime import Runtime
from stepstone.serde import dumps, round_trip

NOW = 1_700_000_000.0


# -- retry decisions ------------------------------------------------------------------------
def test_the_default_backoff_follows_the_schedule_with_jitter() -> None:
    for attempt, base in enumerate(DEFAULT_SCHEDULE):
        assert base <= default_backoff(attempt) <= base + MAX_JITTER
    assert DEFAULT_SCHEDULE[-1] <= default_backoff(50) <= DEFAULT_SCHEDULE[-1] + MAX_JITTER


def _decide(exc: BaseException, attempt: int = 0, max_attempts: int = 5) -> Any:
    return decide_retry(
        exc, attempt=attempt, max_attempts=max_attempts, now=NOW, backoff=lambda a: 10.0 * (a + 1)
    )


def test_retry_decisions() -> None:
    assert _decide(ValueError("x")) == _decide(ValueError("y"))
    assert _decide(ValueError("x")).at == NOW + 10
    assert _decide(ValueError("x"), attempt=2).at == NOW + 30
    assert not _decide(ValueError("x"), attempt=4).retry  # the fifth attempt was the last
    assert not _decide(stepstone.NonRetriableError("no")).retry
    assert _decide(stepstone.RetryAfterError("later", 120)).at == NOW + 120
    # clamped to 1 s .. 24 h
    assert _decide(stepstone.RetryAfterError("soon", 0.001)).at == NOW + 1
    assert _decide(stepstone.RetryAfterError("far", timedelta(days=3))).at == NOW + 86400
    when = datetime.fromtimestamp(NOW + 90, UTC)
    assert _decide(stepstone.RetryAfterError("then", when)).at == pytest.approx(NOW + 90)


# -- durations ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "seconds"),
    [(5, 5.0), (0.25, 0.25), ("1h30m", 5400.0), ("7d", 604800.0), (timedelta(minutes=2), 120.0)],
)
def test_durations(given: Any, seconds: float) -> None:
    assert parse_duration(given) == seconds


@pytest.mark.parametrize("given", ["soon", "-5s", -1, [1]])
def test_bad_durations_say_what(given: Any) -> None:
    with pytest.raises(ConfigError, match="the nap"):
        parse_duration(given, what="the nap")


# -- the JSON round trip --------------------------------------------------------------------
@dataclasses.dataclass
class Point:
    x: int
    y: int


def test_the_round_trip_gives_what_replay_gives() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = {"when": when, "pair": (1, 2), "point": Point(1, 2)}
    assert round_trip(value) == {
        "when": "2026-01-02T03:04:05+00:00",
        "pair": [1, 2],
        "point": {"x": 1, "y": 2},
    }


def test_an_unserializable_value_names_what_and_the_type() -> None:
    with pytest.raises(SerializationError, match=r"step 'load'.*(set|object)") as info:
        dumps({"ok": [1, {2, 3}]}, what="step 'load'")
    assert "set" in str(info.value)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSON_VALUES, st.booleans())
def test_the_compact_encoder_writes_what_json_dumps_writes(value: Any, ascii_only: bool) -> None:
    encode = compact_encoder(ensure_ascii=ascii_only)
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only)
    assert encode(value) == expected
    assert encode([value, value]) == f"[{expected},{expected}]"  # no state left between calls


def test_the_compact_encoder_refuses_what_json_dumps_refuses() -> None:
    strict = compact_encoder(allow_nan=False)
    with pytest.raises(ValueError):
        strict({"x": float("nan")})
    with pytest.raises(TypeError):
        compact_encoder()({"x": object()})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(RecursionError):  # no circular check: a cycle is too deep to write
        compact_encoder()(loop)
    assert compact_encoder()({"x": 1}) == '{"x":1}'  # and the encoder still works after
    with pytest.raises(SerializationError, match="nested too deeply"):
        dumps(loop)


# -- the executor against a fake host --------------------------------------------------------
class FakeHost:
    """Plays the engine: keeps the ops an invocation emits."""

    def __init__(self) -> None:
        self.ops: list[ops.Checkpoint] = []

    async def emit(self, op: ops.Checkpoint) -> Any:
        self.ops.append(op)
        return None


def _invocation(handler: Any, host: FakeHost, steps: list[StepRecord] | None = None) -> Invocation:
    fn = build_function(handler, id="fn", trigger="t", retries=2, name="fn", backoff=None)
    return Invocation(
        InvocationInput(fn, "run-1", 0, [Event(name="t", id="e1")], steps or []),
        emit=host.emit,
        clock=_FixedClock(),
        limits=Limits(),
        backoff=lambda a: 5.0,
    )


class _FixedClock(Clock):
    def now(self) -> float:
        return NOW


async def test_new_steps_are_emitted_and_saved_ones_are_not_run_again() -> None:
    calls: list[str] = []

    async def handler(ctx: stepstone.Context) -> Any:
        a = await ctx.step.run("a", lambda: calls.append("a") or 1)
        b = await ctx.step.run("b", lambda: calls.append("b") or a + 1)
        return {"sum": a + b}

    host = FakeHost()
    outcome = await _invocation(handler, host).execute()
    assert outcome == ops.RunCompleted('{"sum":3}')
    assert [type(op).__name__ for op in host.ops] == ["SaveStep", "SaveStep"]
    saved = [op.step for op in host.ops if isinstance(op, ops.SaveStep)]
    assert [(s.id, s.hashed_id, s.status) for s in saved] == [
        ("a", hash_step_id("a"), StepStatus.COMPLETED),
        ("b", hash_step_id("b"), StepStatus.COMPLETED),
    ]
    # replayed with the saved steps: no handler runs, nothing is emitted, same outcome
    saved = [dataclasses.replace(s, output=o) for s, o in zip(saved, (1, 2), strict=True)]
    calls.clear()
    again = FakeHost()
    assert await _invocation(handler, again, saved).execute() == outcome
    assert calls == [] and again.ops == []


async def test_a_sleep_suspends_with_its_kind_and_time() -> None:
    async def handler(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("nap", 60)

    host = FakeHost()
    outcome = await _invocation(handler, host).execute()
    assert isinstance(outcome, ops.Suspended)
    assert outcome.at == NOW + 60 and outcome.kinds == {ops.SuspendKind.SLEEP}
    [op] = host.ops
    assert isinstance(op, ops.SaveStep) and op.step.status is StepStatus.SLEEPING


async def test_a_failing_step_is_retried_later_as_a_retry_suspension() -> None:
    def fail() -> None:
        raise ValueError("boom")

    async def handler(ctx: stepstone.Context) -> Any:
        await ctx.step.run("flaky", fail)

    host = FakeHost()
    outcome = await _invocation(handler, host).execute()
    assert isinstance(outcome, ops.Suspended) and outcome.kinds == {ops.SuspendKind.RETRY}
    assert outcome.at == NOW + 5
    [op] = host.ops
    assert isinstance(op, ops.SaveStep) and op.step.status is StepStatus.RETRYING
    assert op.step.error is not None and op.step.error["message"] == "boom"


# -- a worker without an App ------------------------------------------------------------------
async def test_a_worker_runs_on_a_runtime_alone() -> None:
    runtime = Runtime("bare", "memory://", backoff=lambda a: 0.01)

    async def double(ctx: stepstone.Context) -> Any:
        return await ctx.step.run("double", lambda: ctx.event.data["n"] * 2)

    fn = build_function(double, id="double", trigger="n/given", retries=0, name="x", backoff=None)
    runtime.registry.add(fn)
    try:
        async with Worker(runtime, poll_interval=0.01):
            [event_id] = await runtime.intake.send({"name": "n/given", "data": {"n": 21}})
            store = await runtime.store()
            [run] = await store.runs_for_event(event_id)
            for _ in range(500):
                current = await store.get_run(run.id)
                if current is not None and current.status is RunStatus.COMPLETED:
                    break
                await asyncio.sleep(0.01)
            assert current is not None and current.output == 42
    finally:
        await runtime.close()


async def test_a_run_writer_persists_ops_on_a_runtime_alone() -> None:
    runtime = Runtime("bare", "memory://")

    async def noop(ctx: stepstone.Context) -> Any:
        return None

    runtime.registry.add(
        build_function(noop, id="fn", trigger="t", retries=0, name="fn", backoff=None)
    )
    try:
        store = await runtime.store()
        await runtime.intake.send({"name": "t"})
        [claim] = await store.claim("w", 1, runtime.clock.now(), 30.0)
        writer = RunWriter(runtime, store, claim)
        step = StepRecord(
            id="a", hashed_id=hash_step_id("a"), status=StepStatus.COMPLETED, attempts=1, output=1
        )
        await writer.checkpoint(ops.SaveStep(step, output_json="1"))
        await writer.outcome(ops.RunCompleted("2"))
        run = await store.get_run(claim.run.id)
        assert run is not None and run.status is RunStatus.COMPLETED and run.output == 2
        assert [(s.id, s.output) for s in run.steps] == [("a", 1)]
        # its end was announced through the same intake as any event
        finished = await store.get_event(f"{run.id}:finished")
        assert finished is not None and finished.event.data["output"] == 2
    finally:
        await runtime.close()


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_a_ulid_is_its_value_in_crockfords_base32_most_significant_first(value: int) -> None:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    text = encode_ulid(value)
    assert len(text) == 26
    assert sum(alphabet.index(char) << (5 * (25 - n)) for n, char in enumerate(text)) == value


def test_the_step_record_s_own_init_takes_every_field_with_its_default() -> None:
    """StepRecord writes its fields in one dict update (it is made on every step): its
    __init__ must name every field, in order, with the dataclass's defaults."""
    import inspect

    fields = dataclasses.fields(StepRecord)
    params = list(inspect.signature(StepRecord.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in fields]
    for param, each in zip(params, fields, strict=True):
        assert param.default == (
            inspect.Parameter.empty if each.default is dataclasses.MISSING else each.default
        )
    values = {f.name: f"value of {f.name}" for f in fields}
    record = StepRecord(**values)
    assert dataclasses.asdict(record) == values
    assert dataclasses.replace(record, attempts=3).attempts == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.attempts = 4  # type: ignore[misc]
