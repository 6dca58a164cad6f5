"""OpenTelemetry traces (the `otel` extra): one trace from the sender's span through a run
of three steps with a retry and a sleep, across two worker processes, on SQLite and
PostgreSQL; the runs a step's send_event and invoke start continue it; a call request to
an SDK app carries `traceparent`; without a tracer provider, or without the API, nothing
changes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import stepstone
from stepstone import tracing
from stepstone.function import function_from_config
from stepstone.store import SyncedAppRecord
from stepstone.tracecontext import RunTrace, parse_traceparent, parse_tracestate
from tests.apps.traced import make_app, read_spans, span_record
from tests.live_server import LiveServer
from tests.process import READY, ROOT, start_worker, stop
from tests.sdk.host import one_invocation

Span = dict[str, Any]
# a sender's trace context, as an upstream service would hand it over
UPSTREAM = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
VENDORS = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def _set_provider(provider: TracerProvider | None) -> None:
    # the API sets its global provider once per process; tests set and unset their own
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """This process's finished spans, in memory (the SDK's exporter for tests)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _set_provider(provider)
    try:
        yield memory
    finally:
        _set_provider(None)
        provider.shutdown()


def _records(exporter: InMemorySpanExporter) -> list[Span]:
    return [span_record(span) for span in exporter.get_finished_spans()]


def _one(spans: list[Span], name: str, **attributes: Any) -> Span:
    found = _all(spans, name, **attributes)
    assert len(found) == 1, (name, attributes, [s["name"] for s in spans])
    return found[0]


def _all(spans: list[Span], name: str, **attributes: Any) -> list[Span]:
    return [
        s
        for s in spans
        if s["name"] == name and all(s["attributes"].get(k) == v for k, v in attributes.items())
    ]


async def _until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _ready(log: Path) -> bool:
    return log.exists() and READY in log.read_text(errors="replace")


def _suspended_at_the_nap(folder: Path) -> bool:
    """The invocation that began the sleep has ended (and with it, every span it made)."""
    spans = read_spans(folder)
    naps = _all(spans, "step nap")
    return bool(naps) and any(
        s["attributes"].get("stepstone.invocation.outcome") == "suspended"
        and s["end"] >= naps[0]["end"]
        for s in _all(spans, "invocation traced")
    )


@pytest.mark.slow
async def test_one_trace_from_the_sender_through_a_run_across_two_workers(
    shared_database_url: str, tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    url = shared_database_url
    folder, logs = tmp_path / "spans", tmp_path / "logs"
    folder.mkdir()
    logs.mkdir()
    env = {"STEPSTONE_TEST_SPANS": str(folder)}
    app_path = "tests.apps.traced:app"
    first = start_worker(url, app_path, name="first", env=env, log_dir=logs, lease=2.0)
    second: subprocess.Popen[bytes] | None = None
    sender = make_app(url)
    try:
        await _until(lambda: _ready(logs / "worker-first.log"), "the first worker")
        with trace.get_tracer("shop").start_as_current_span("checkout") as checkout:
            [event_id] = await sender.send(stepstone.Event("traced/go"))
        [run] = await sender.runs_for_event(event_id)
        # the first worker runs it up to its sleep (a retry on the way), then dies
        await _until(lambda: _suspended_at_the_nap(folder), "the run to sleep")
        stop(first)
        second = start_worker(url, app_path, name="second", env=env, log_dir=logs, lease=2.0)
        done = await sender.wait_for_run(run.id, timeout=60)
        assert done.status == "completed", done
        await _until(
            lambda: (
                len(_all(read_spans(folder), "run traced-notified")) == 1
                and len(_all(read_spans(folder), "run traced-child")) == 1
                and len(_all(read_spans(folder), "run traced")) == 1
            ),
            "the run spans",
        )
    finally:
        await sender.close()
        stop(first)
        if second is not None:
            second.terminate()
            second.wait(30)
    spans = read_spans(folder)
    mine = _records(exporter)
    trace_id = f"{checkout.get_span_context().trace_id:032x}"
    user = _one(mine, "checkout")
    send = _one(mine, "send traced/go")
    assert send["parent_id"] == user["span_id"]
    assert send["attributes"]["stepstone.event.count"] == 1
    # every span of both workers is in the sender's trace
    assert spans and {s["trace_id"] for s in spans + mine} == {trace_id}
    first_pid, second_pid = first.pid, second.pid
    assert {s["pid"] for s in spans} == {first_pid, second_pid}

    # the run's span: a child of the send's, emitted by the worker that ended the run
    run_span = _one(spans, "run traced")
    assert run_span["parent_id"] == send["span_id"]
    assert run_span["pid"] == second_pid
    assert run_span["attributes"]["stepstone.run.id"] == run.id
    assert run_span["attributes"]["stepstone.run.status"] == "completed"
    assert run_span["span_id"] == f"{RunTrace.of(run.id, None).span.span_id:016x}"
    # its claims and invocations, in both workers, are its children
    claims = _all(spans, "claim traced")
    invocations = _all(spans, "invocation traced")
    for child in claims + invocations:
        assert child["parent_id"] == run_span["span_id"], child
    assert {s["pid"] for s in claims} == {first_pid, second_pid}
    assert {s["pid"] for s in invocations} == {first_pid, second_pid}
    # from the first claim to the end
    assert abs(run_span["start"] - min(s["start"] for s in claims)) < 1_000_000
    assert run_span["end"] >= max(s["end"] for s in invocations)

    # each step is a child of an invocation of the run
    steps = [
        s
        for s in spans
        if s["name"].startswith("step ") and s["attributes"]["stepstone.run.id"] == run.id
    ]
    by_id = {s["span_id"]: s for s in invocations}
    for step in steps:
        assert step["parent_id"] in by_id, step
        assert step["attributes"]["stepstone.function.id"] == "traced"
    ran_in = {s["attributes"]["stepstone.step.id"]: s["pid"] for s in steps}
    assert ran_in == {
        "one": first_pid,
        "flaky": first_pid,
        "nap": first_pid,
        "three": second_pid,
        "notify": second_pid,
        "call-child": second_pid,
    }
    # the retried step: two attempts, the first failed
    attempts = _all(spans, "step flaky")
    failed, retried = sorted(attempts, key=lambda s: s["attributes"]["stepstone.attempt"])
    assert (failed["attributes"]["stepstone.attempt"], failed["status"]) == (0, "ERROR")
    assert failed["attributes"]["stepstone.step.status"] == "retrying"
    assert "exception" in failed["events"]
    assert (retried["attributes"]["stepstone.attempt"], retried["status"]) == (1, "UNSET")
    assert retried["attributes"]["stepstone.step.status"] == "completed"
    assert by_id[failed["parent_id"]] != by_id[retried["parent_id"]]  # two invocations

    # the runs that send_event and invoke started continue the trace from their steps
    notify, invoke = _one(spans, "step notify"), _one(spans, "step call-child")
    assert _one(spans, "run traced-notified")["parent_id"] == notify["span_id"]
    assert _one(spans, "run traced-child")["parent_id"] == invoke["span_id"]
    assert _one(spans, "step note")["trace_id"] == trace_id
    assert _one(spans, "step double")["trace_id"] == trace_id


def _napper(url: str, entered: asyncio.Event | None = None) -> stepstone.App:
    """A run that sleeps an hour (a cancel_on rule listens for naps/stop), and one that
    holds its worker in a step, which sets `entered` and waits for it to be cleared."""
    app = stepstone.App("naps", database=url)
    rule = stepstone.Cancel("naps/stop", if_="event.data.n == async.data.n")

    @app.function(id="napper", trigger="naps/go", cancel_on=rule)
    async def napper(ctx: stepstone.Context) -> str:
        await ctx.step.run("before", lambda: "awake")
        await ctx.step.sleep("long", "1h")
        return "rested"

    async def slow() -> str:
        assert entered is not None
        entered.set()
        while entered.is_set():
            await asyncio.sleep(0.01)
        return "done"

    @app.function(id="busy", trigger="naps/busy")
    async def busy(ctx: stepstone.Context) -> int:
        await ctx.step.run("slow", slow)
        return int(await ctx.step.run("after", lambda: 1))

    return app


async def _until_status(app: stepstone.App, run_id: str, status: str) -> stepstone.Run:
    deadline = time.monotonic() + 30
    while (run := await app.get_run(run_id)) is None or run.status != status:
        assert time.monotonic() < deadline, f"run {run_id} never became {status}"
        await asyncio.sleep(0.02)
    return run


@pytest.mark.parametrize("how", ["api", "cancel_on"])
async def test_a_run_cancelled_while_it_sleeps_gets_its_run_span(
    shared_database_url: str, exporter: InMemorySpanExporter, how: str
) -> None:
    """No worker holds a sleeping run, so none ends it: the process that cancels it (an
    operator's cancel, or an event its cancel_on rule matches) emits its span, once, with
    the ids and start the worker's would have had, in the trace of the span that sent it;
    the event announcing its end continues that trace."""
    app = _napper(shared_database_url)
    try:
        async with app.worker():
            with trace.get_tracer("shop").start_as_current_span("checkout") as checkout:
                [event_id] = await app.send(stepstone.Event("naps/go", {"n": 1}))
            [run] = await app.runs_for_event(event_id)
            await _until_status(app, run.id, "sleeping")
            suspended = {"stepstone.invocation.outcome": "suspended"}
            await _until(
                lambda: bool(_all(_records(exporter), "invocation napper", **suspended)),
                "the invocation that began the sleep to end",
            )
            if how == "api":
                assert await app.cancel(run.id)
            else:  # sent outside any span: the run's span stays in its own event's trace
                await app.send(stepstone.Event("naps/stop", {"n": 1}))
            ended = await app.wait_for_run(run.id, timeout=30)
            assert ended.status == "cancelled"
            await _until(lambda: bool(_all(_records(exporter), "run napper")), "the run span")
            await asyncio.sleep(0.3)  # time for a second span, were one to come
            announced = await app.get_event(f"{run.id}:cancelled")
            trigger = await app.get_event(event_id)
    finally:
        await app.close()
    spans = _records(exporter)
    run_span = _one(spans, "run napper")
    trace_id = f"{checkout.get_span_context().trace_id:032x}"
    expected = RunTrace.of(run.id, None).span
    assert (run_span["trace_id"], run_span["span_id"]) == (trace_id, f"{expected.span_id:016x}")
    assert run_span["parent_id"] == _one(spans, "send naps/go")["span_id"]
    assert run_span["attributes"]["stepstone.run.id"] == run.id
    assert run_span["attributes"]["stepstone.run.status"] == "cancelled"
    assert run_span["status"] == "UNSET" and "exception" not in run_span["events"]
    # from the first claim to the cancel, as the run records them
    assert ended.started_at is not None and ended.ended_at is not None
    assert abs(run_span["start"] - ended.started_at * 1e9) < 1e6
    assert abs(run_span["end"] - ended.ended_at * 1e9) < 1e6
    for child in _all(spans, "invocation napper") + _all(spans, "claim napper"):
        assert child["parent_id"] == run_span["span_id"]
    assert announced is not None and trigger is not None
    assert announced.event.trace == RunTrace.of(run.id, trigger.event.trace).span.traceparent
    assert f"-{run_span['span_id']}-" in announced.event.trace


async def test_a_run_cancelled_in_a_step_gets_one_span_from_its_worker(
    shared_database_url: str, exporter: InMemorySpanExporter
) -> None:
    """A worker holds the run: it ends it, and its span is the worker's alone. A run
    cancelled before any claim has no run span (its span would start at its first claim)."""
    entered = asyncio.Event()
    app = _napper(shared_database_url, entered)
    try:
        [queued_event] = await app.send(stepstone.Event("naps/go", {"n": 2}))  # no worker
        [queued] = await app.runs_for_event(queued_event)
        assert await app.cancel(queued.id)
        async with app.worker():
            [event_id] = await app.send(stepstone.Event("naps/busy"))
            [run] = await app.runs_for_event(event_id)
            await asyncio.wait_for(entered.wait(), 30)
            assert await app.cancel(run.id)  # it stops at its next step
            entered.clear()
            assert (await app.wait_for_run(run.id, timeout=30)).status == "cancelled"
            await _until(lambda: bool(_all(_records(exporter), "run busy")), "the run span")
            await asyncio.sleep(0.3)
    finally:
        await app.close()
    spans = _records(exporter)
    run_span = _one(spans, "run busy")
    assert run_span["attributes"]["stepstone.run.status"] == "cancelled"
    assert _one(spans, "step slow")["attributes"]["stepstone.step.status"] == "completed"
    assert not _all(spans, "step after")
    assert not _all(spans, "run napper"), "a run never claimed has no run span"


async def test_spans_of_a_run_in_process(exporter: InMemorySpanExporter) -> None:
    """One worker in this process, a sync function: its steps are children of its
    invocation, a handler's own spans are children of its step, and a run started outside
    any span starts a trace of its own, named by the run id."""
    app = stepstone.App("inproc", database="memory://", backoff=lambda attempt: 0.01)
    inner = trace.get_tracer("user")

    @app.function(id="sync-fn", trigger="inproc/go")
    def sync_fn(ctx: stepstone.Context) -> str:
        def handler() -> str:
            with inner.start_as_current_span("inside"):
                return "ok"

        return ctx.step.run("work", handler)

    async with app.worker():
        [event_id] = await app.send(stepstone.Event("inproc/go"))
        [run] = await app.runs_for_event(event_id)
        assert (await app.wait_for_run(run.id, timeout=10)).status == "completed"
        await _until(lambda: bool(_all(_records(exporter), "run sync-fn")), "the run span", 10)
    spans = _records(exporter)
    send, run_span = _one(spans, "send inproc/go"), _one(spans, "run sync-fn")
    assert run_span["parent_id"] == send["span_id"]
    invocation = _one(spans, "invocation sync-fn")
    assert invocation["parent_id"] == run_span["span_id"]
    step = _one(spans, "step work")
    assert step["parent_id"] == invocation["span_id"]
    assert _one(spans, "inside")["parent_id"] == step["span_id"]
    assert len({s["trace_id"] for s in spans}) == 1


async def test_a_run_without_a_traced_event_gets_a_trace_of_its_own(
    exporter: InMemorySpanExporter,
) -> None:
    app = stepstone.App("root", database="memory://")

    @app.function(id="rooted", trigger="root/go")
    async def rooted(ctx: stepstone.Context) -> int:
        return int(await ctx.step.run("one", lambda: 1))

    store = await app.store()
    planned = app.runtime.planner.events(stepstone.Event("root/go"))  # no send: no span
    await store.ingest(planned)
    [run_id] = [r.id for item in planned for r in item.runs]
    async with app.worker():
        assert (await app.wait_for_run(run_id, timeout=10)).status == "completed"
        await _until(lambda: bool(_all(_records(exporter), "run rooted")), "the run span", 10)
    spans = _records(exporter)
    expected = RunTrace.of(run_id, None).span
    run_span = _one(spans, "run rooted")
    assert run_span["parent_id"] is None
    assert (run_span["trace_id"], run_span["span_id"]) == (
        f"{expected.trace_id:032x}",
        f"{expected.span_id:016x}",
    )
    assert {s["trace_id"] for s in spans} == {f"{expected.trace_id:032x}"}
    await app.close()


async def test_a_call_request_to_an_sdk_app_carries_traceparent(
    exporter: InMemorySpanExporter,
) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    fn = function_from_config(
        {
            "id": "shop-remote",
            "triggers": [{"event": "test/sequential"}],
            "runtime": {"type": "http", "url": "http://127.0.0.1:9/api/inngest"},
        }
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        with trace.get_tracer("test").start_as_current_span("invocation") as outer:
            outcome = await one_invocation(fn, client).execute()
    assert outcome is not None
    [request] = seen
    sent = parse_traceparent(request.headers["traceparent"])
    assert sent is not None
    call = _one(_records(exporter), "call shop-remote")
    assert sent.trace_id == outer.get_span_context().trace_id
    assert f"{sent.span_id:016x}" == call["span_id"]
    assert call["parent_id"] == f"{outer.get_span_context().span_id:016x}"


async def test_events_keep_their_trace_in_every_store(database_url: str) -> None:
    app = stepstone.App("keep", database=database_url)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        [event_id] = await app.send(stepstone.Event("keep/it", trace=traceparent))
        [other_id] = await app.send(stepstone.Event("keep/it"))  # no provider: no trace
        store = await app.store()
        kept = await store.get_event(event_id)
        plain = await store.get_event(other_id)
        assert kept is not None and kept.event.trace == traceparent
        assert plain is not None and plain.event.trace is None
        assert "trace" not in kept.event.to_dict()  # functions see the event as sent
    finally:
        await app.close()


def test_a_malformed_trace_is_refused() -> None:
    app = stepstone.App("bad", database="memory://")
    with pytest.raises(stepstone.EventError, match="traceparent"):
        app.send_sync(stepstone.Event("bad/trace", trace="00-zz-01"))
    app.close_sync()


def test_without_a_provider_the_hooks_do_nothing() -> None:
    assert tracing.ENABLED
    with tracing.sending() as send:
        assert send.traceparent is None


def test_run_trace_ids_are_derived_from_the_run() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    a, b = RunTrace.of("RUN-A", None), RunTrace.of("RUN-A", None)
    assert a == b and a.parent is None and a.span.flags == 1
    assert RunTrace.of("RUN-B", None).span.trace_id != a.span.trace_id
    continued = RunTrace.of("RUN-A", parent)
    assert continued.parent == parse_traceparent(parent)
    assert f"{continued.span.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert continued.span.span_id == a.span.span_id
    assert continued.span.flags == 0  # the sender's sampling decision holds
    for bad in ("", "00-" + "0" * 32 + "-b7ad6b7169203331-01", "ff-x", parent.upper()):
        assert parse_traceparent(bad) is None


def test_without_the_api_installed_stepstone_works_as_before() -> None:
    script = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "import stepstone\n"
        "from stepstone import tracing\n"
        "assert not tracing.ENABLED\n"
        "app = stepstone.App('plain', database='memory://')\n"
        "@app.function(id='f', trigger='plain/go')\n"
        "async def f(ctx):\n"
        "    return await ctx.step.run('s', lambda: 2)\n"
        "import asyncio\n"
        "async def main():\n"
        "    async with app.worker():\n"
        "        [e] = await app.send(stepstone.Event('plain/go'))\n"
        "        [run] = await app.runs_for_event(e)\n"
        "        print((await app.wait_for_run(run.id, timeout=10)).output)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"


def _upstream() -> Any:
    """A context whose span is the upstream service's (remote), with its tracestate."""
    parent = parse_traceparent(UPSTREAM)
    assert parent is not None
    context = trace.SpanContext(
        parent.trace_id,
        parent.span_id,
        is_remote=True,
        trace_flags=trace.TraceFlags(parent.flags),
        trace_state=trace.TraceState.from_header([VENDORS]),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(context))


def _states(exporter: InMemorySpanExporter) -> dict[str, set[str]]:
    """Each span name's tracestates, as the SDK made them."""
    found: dict[str, set[str]] = {}
    for span in exporter.get_finished_spans():
        assert span.context is not None
        found.setdefault(span.name, set()).add(span.context.trace_state.to_header())
    return found


async def test_tracestate_goes_with_the_trace_from_the_sender_through_every_run(
    database_url: str, exporter: InMemorySpanExporter
) -> None:
    """The sender's tracestate is recorded with its event, and the runs it starts, their
    steps, the events a step sends, the runs an invoke starts and the run's end announced
    all carry it on."""
    app = stepstone.App("states", database=database_url)

    @app.function(id="ordered", trigger="states/ordered")
    async def ordered(ctx: stepstone.Context) -> int:
        await ctx.step.run("pack", lambda: "packed")
        await ctx.step.send_event("tell", stepstone.Event("states/told", {"by": ctx.run_id}))
        return int(await ctx.step.invoke("count", function="counted", data={"n": 2}))

    @app.function(id="told", trigger="states/told")
    async def told(ctx: stepstone.Context) -> str:
        return str(await ctx.step.run("note", lambda: "noted"))

    @app.function(id="counted", trigger=None)
    async def counted(ctx: stepstone.Context) -> int:
        return int(await ctx.step.run("double", lambda: ctx.event.data["n"] * 2))

    try:
        async with app.worker():
            tracer = trace.get_tracer("shop")
            with tracer.start_as_current_span("checkout", context=_upstream()):
                [event_id] = await app.send(stepstone.Event("states/ordered"))
            [run] = await app.runs_for_event(event_id)
            assert (await app.wait_for_run(run.id, timeout=30)).status == "completed"
            for name in ("run ordered", "run told", "run counted"):
                await _until(lambda n=name: n in _states(exporter), f"the span {name!r}")
            sent = await app.get_event(event_id)
            page = await app.list_events(limit=100)
    finally:
        await app.close()
    assert sent is not None and sent.event.tracestate == VENDORS
    assert sent.event.trace is not None and sent.event.trace[3:35] == UPSTREAM[3:35]
    assert "tracestate" not in sent.event.to_dict()  # functions see the event as sent
    # every event stored in this trace: the step's, the invoke's, the runs' ends announced
    by_name = {stored.event.name: stored.event for stored in page}
    for name in ("states/told", "stepstone/function.invoked", "stepstone/function.finished"):
        assert by_name[name].tracestate == VENDORS, name
    states = _states(exporter)
    # every span of the runs carries it: the sender's, the runs', their invocations', steps'
    assert states.pop("checkout") == states.pop("send states/ordered") == {VENDORS}
    assert states and all(found == {VENDORS} for found in states.values()), states


def test_post_e_records_the_requests_tracestate_and_drops_an_invalid_one(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    url = f"sqlite:///{tmp_path / 'intake.db'}"
    served = stepstone.App("intake", database=url)
    sent: dict[str, list[str]] = {}
    headers = {
        "valid": [("traceparent", UPSTREAM), ("tracestate", "rojo=1 , , congo=2")],
        "two headers": [
            ("traceparent", UPSTREAM),
            ("tracestate", "rojo=1"),
            ("tracestate", "congo=2"),
        ],
        "invalid": [("traceparent", UPSTREAM), ("tracestate", "Rojo=1,congo=2")],
        "twice a key": [("traceparent", UPSTREAM), ("tracestate", "rojo=1,rojo=2")],
        "no traceparent": [("tracestate", "rojo=1")],
    }
    with LiveServer(served, dev=True) as live, live.client() as http:
        for case, pairs in headers.items():
            answer = http.post("/e/dev", json={"name": "intake/seen"}, headers=pairs)
            assert answer.status_code == 200, answer.text
            sent[case] = answer.json()["ids"]

    async def stored() -> dict[str, Any]:
        reader = stepstone.App("reader", database=url)
        try:
            found = {}
            for case, [event_id] in sent.items():
                event = await reader.get_event(event_id)
                assert event is not None
                found[case] = (event.event.trace is not None, event.event.tracestate)
            return found
        finally:
            await reader.close()

    assert asyncio.run(stored()) == {
        "valid": (True, "rojo=1,congo=2"),  # the optional spaces and empty members go
        "two headers": (True, "rojo=1,congo=2"),  # one list, as W3C combines them
        "invalid": (True, None),  # dropped, the event taken: an upper-case key
        "twice a key": (True, None),
        "no traceparent": (True, None),  # the send's own span begins a trace, without it
    }


class _SdkApp:
    """As much of an SDK app as a call needs: every call request is answered 200 with the
    function's output, and its headers kept."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> _SdkApp:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api/inngest"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        await reader.readexactly(int(headers.get("content-length", "0")))
        self.headers.append(headers)
        body = b'"shipped"'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()


async def test_a_call_request_to_an_sdk_app_carries_the_tracestate(
    shared_database_url: str, exporter: InMemorySpanExporter
) -> None:
    """A worker's call request to an SDK app carries the tracestate of the run's trace
    (from the event that started it) beside its traceparent."""
    app = stepstone.App("caller", database=shared_database_url)
    async with _SdkApp() as sdk_app:
        config = {
            "id": "sdk-ship",
            "triggers": [{"event": "sdk/ship"}],
            "runtime": {"type": "http", "url": sdk_app.url},
        }
        synced = SyncedAppRecord("sdk", sdk_app.url, "py:v0.5.0", None, None, time.time())
        try:
            await (await app.store()).save_app(synced, [config])
            async with app.worker():
                with trace.get_tracer("shop").start_as_current_span(
                    "checkout", context=_upstream()
                ):
                    [event_id] = await app.send(stepstone.Event("sdk/ship"))
                [run] = await app.runs_for_event(event_id)
                done = await app.wait_for_run(run.id, timeout=30)
                assert (done.status, done.output) == ("completed", "shipped")
        finally:
            await app.close()
    [called] = sdk_app.headers
    assert called["tracestate"] == VENDORS
    sent = parse_traceparent(called["traceparent"])
    assert sent is not None and f"{sent.trace_id:032x}" == UPSTREAM[3:35]
    call = _one(_records(exporter), "call sdk-ship")
    assert f"{sent.span_id:016x}" == call["span_id"]


def test_tracestate_rules() -> None:
    """W3C: up to 32 members of key=value, keys lower case (tenant@system allowed) and
    unique, values printable without `,` and `=`; stepstone keeps at most 512 characters
    and drops an invalid one."""
    assert parse_tracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE") == VENDORS
    assert parse_tracestate("tenant1@vendor=x y") == "tenant1@vendor=x y"  # a space inside
    assert parse_tracestate(",".join(f"k{i}=v" for i in range(32))) is not None
    for bad in (
        ",".join(f"k{i}=v" for i in range(33)),  # 33 members
        "k=" + "v" * 600,  # a value over 256 characters
        ",".join(f"k{i}={'v' * 250}" for i in range(3)),  # members fine, over 512 in all
        "rojo",
        "rojo=",
        "Rojo=1",
        "rojo=a,b",
        "rojo=a=b",
        "rojo=1,rojo=2",
        "",
        " , ",
    ):
        assert parse_tracestate(bad) is None, bad
    app = stepstone.App("rules", database="memory://")
    try:
        [kept] = app.runtime.planner.events(
            stepstone.Event("rules/x", trace=UPSTREAM, tracestate="rojo=1,Bad=2")
        )
        [alone] = app.runtime.planner.events(stepstone.Event("rules/x", tracestate="rojo=1"))
        assert (kept.event.trace, kept.event.tracestate) == (UPSTREAM, None)  # taken, dropped
        assert alone.event.tracestate is None  # a tracestate means nothing without its parent
    finally:
        app.close_sync()
