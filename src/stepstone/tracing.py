"""OpenTelemetry spans of sends, claims, runs, invocations and steps: the optional extra
`stepstone[otel]` (the API only; the SDK and its exporters are the user's, set up with
`trace.set_tracer_provider`). docs/operations.md ("Traces") shows the spans.

The engine calls the hooks below at a few points; each returns at once when the API is not
installed, or when no tracer provider is set (the API's no-op default), so an app that does
not trace pays a global lookup per hook.

A run outlives the process that starts it, so its span cannot be held open: its ids come
from stored values (tracecontext.RunTrace: the run id and its trigger event's
`traceparent` and `tracestate`), the claims, invocations and steps of every worker are
made children of that span id, and whoever ends the run emits the run's span at its end,
with the run's recorded start time and that id (the SDK's tracer is asked for those ids
while it starts the span; another implementation picks its own span id for it): the
worker that ends it, or the process that cancelled it while no worker held it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, cast

from .records import Event, Run, RunStatus, StepRecord, StepStatus
from .tracecontext import RunTrace, SpanRef, parse_tracestate

if TYPE_CHECKING:
    from .store import Claim

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TraceState
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - the extra is not installed: every hook returns
    ENABLED = False
else:
    ENABLED = True
    _PROPAGATOR = TraceContextTextMapPropagator()

try:
    _VERSION = version("stepstone")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    _VERSION = "0"

_cache: tuple[object, Tracer] | None = None
_UNKNOWN = object()
_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
# the ids the next span started on this thread or task gets (the run span's, see above)
_CHOSEN: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "stepstone_chosen_span_ids", default=None
)
_ATTEMPT: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar(
    "stepstone_step_attempt", default=None
)


def _tracer() -> Tracer | None:
    """stepstone's tracer from the global provider; None while none is set.

    Every step asks, several times: the API's `get_tracer_provider()` looks its
    environment variable up on each call while no provider is set (a tenth of a step's
    cost here), so the provider is read from the API's module global, where
    `set_tracer_provider` puts it. That name is not public: if it is missing (another API
    version), or the provider is to come from that variable, the API's function is asked."""
    global _cache
    if not ENABLED:
        return None
    provider = getattr(otel_trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None and not _PROVIDER_FROM_ENV:
        return None
    cached = _cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    if provider is None or provider is _UNKNOWN:
        provider = otel_trace.get_tracer_provider()
    if isinstance(provider, (otel_trace.ProxyTracerProvider, otel_trace.NoOpTracerProvider)):
        return None
    tracer = cast(otel_trace.TracerProvider, provider).get_tracer("stepstone", _VERSION)
    inner = getattr(tracer, "id_generator", None)  # the SDK's: this tracer's own
    if inner is not None and not isinstance(inner, _ChosenIds):
        tracer.id_generator = _ChosenIds(inner)  # type: ignore[attr-defined]
    _cache = (provider, tracer)
    return tracer


class _ChosenIds:
    """The SDK tracer's id generator, but the ids set in `_CHOSEN` win."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def generate_span_id(self) -> int:
        chosen = _CHOSEN.get()
        return int(self._inner.generate_span_id()) if chosen is None else chosen[1]

    def generate_trace_id(self) -> int:
        chosen = _CHOSEN.get()
        return int(self._inner.generate_trace_id()) if chosen is None else chosen[0]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _context(ref: SpanRef | None) -> otel_context.Context:
    """A context whose current span is `ref` (a span of another process, or of the past),
    with its trace's tracestate: the SDK's spans started in it carry that on."""
    if ref is None:
        return otel_context.Context()
    span_context = otel_trace.SpanContext(
        ref.trace_id,
        ref.span_id,
        is_remote=True,
        trace_flags=otel_trace.TraceFlags(ref.flags),
        trace_state=TraceState.from_header([ref.state]) if ref.state else None,
    )
    return otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(span_context))


def _span_ref(span: Span) -> SpanRef | None:
    """The span as the events it sends record it: its ids, flags and tracestate."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    state = parse_tracestate(context.trace_state.to_header()) if context.trace_state else None
    return SpanRef(context.trace_id, context.span_id, int(context.trace_flags), state)


def _run_attributes(run: Run) -> dict[str, Any]:
    return {"stepstone.function.id": run.function_id, "stepstone.run.id": run.id}


def _fail(span: Span, error: dict[str, Any] | None) -> None:
    """ERROR status, and the error as the semantic conventions' `exception` event."""
    error = error or {}
    name, message = str(error.get("name") or "Error"), str(error.get("message") or "")
    span.set_status(Status(StatusCode.ERROR, f"{name}: {message}" if message else name))
    event = {"exception.type": name, "exception.message": message}
    if error.get("stack"):
        event["exception.stacktrace"] = str(error["stack"])
    span.add_event("exception", event)


def _run_trace(run_id: str, first: Event | None) -> RunTrace:
    """A run's trace, from its first event's (its trigger's) trace context."""
    return RunTrace.of(run_id, *((first.trace, first.tracestate) if first else (None, None)))


def run_trace(claim: Claim) -> RunTrace:
    return _run_trace(claim.run.id, claim.events[0] if claim.events else None)


def run_span(run_id: str, first: Event | None) -> SpanRef | None:
    """The run's span (what its lifecycle events carry on), given its first event; None
    while no tracer provider is set."""
    return _run_trace(run_id, first).span if _tracer() is not None else None


# -- sends ------------------------------------------------------------------------------
class Send:
    """One send's span: its traceparent and tracestate go with every event it stores."""

    def __init__(self, span: Span | None) -> None:
        self._span = span
        self.context = None if span is None else _span_ref(span)

    @property
    def traceparent(self) -> str | None:
        return None if self.context is None else self.context.traceparent

    def planned(self, events: Sequence[Event]) -> None:
        if self._span is None or not events:
            return
        names = sorted({event.name for event in events})
        self._span.update_name(f"send {names[0]}" if len(names) == 1 else "send")
        self._span.set_attribute("stepstone.event.count", len(events))
        self._span.set_attribute("stepstone.event.names", names[:20])


@contextlib.contextmanager
def sending() -> Iterator[Send]:
    """A PRODUCER span around a send (app.send, POST /e/{key}), current while it stores."""
    tracer = _tracer()
    if tracer is None:
        yield Send(None)
        return
    with tracer.start_as_current_span("send", kind=SpanKind.PRODUCER) as span:
        yield Send(span)


# -- claims, invocations and the run's own span ------------------------------------------
def claimed(claims: Sequence[Claim], began: float, ended: float) -> None:
    """A span per claimed run, in that run's trace, for the claim that took it."""
    tracer = _tracer()
    if tracer is None:
        return
    for claim in claims:
        attributes = {
            **_run_attributes(claim.run),
            "stepstone.worker.id": claim.lease.owner,
            "stepstone.fence": claim.lease.fence,
            "stepstone.claim.size": len(claims),
        }
        span = tracer.start_span(
            f"claim {claim.run.function_id}",
            context=_context(run_trace(claim).span),
            attributes=attributes,
            start_time=_ns(began),
        )
        span.end(end_time=_ns(max(began, ended)))


class InvocationSpan:
    """One invocation of a claimed run (from its claim to its outcome), current in the
    task that runs it, so its steps are its children."""

    def __init__(self, span: Span | None) -> None:
        self._span = span

    def end(self, outcome: str, error: dict[str, Any] | None = None) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        span.set_attribute("stepstone.invocation.outcome", outcome)
        if error is not None:
            _fail(span, error)
        span.end()


def invocation_started(claim: Claim) -> InvocationSpan:
    """Starts the invocation's span and makes it current in the calling task; it ends with
    `end`, or as the task ends (a lost lease, a shutdown) with the outcome "abandoned"."""
    tracer = _tracer()
    if tracer is None:
        return InvocationSpan(None)
    run = claim.run
    attributes = {
        **_run_attributes(run),
        "stepstone.attempt": run.attempt,
        "stepstone.worker.id": claim.lease.owner,
        "stepstone.fence": claim.lease.fence,
    }
    span = tracer.start_span(
        f"invocation {run.function_id}",
        context=_context(run_trace(claim).span),
        attributes=attributes,
    )
    invocation = InvocationSpan(span)
    otel_context.attach(otel_trace.set_span_in_context(span))  # this task's: no detach
    with contextlib.suppress(RuntimeError):
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _: invocation.end("abandoned"))
    return invocation


def run_ended(claim: Claim, status: RunStatus, error: dict[str, Any] | None, at: float) -> None:
    """Emits the run's span, from its first claim to `at`, once its end is saved by the
    worker that held it."""
    tracer = _tracer()
    if tracer is not None:
        _emit_run(tracer, claim.run, run_trace(claim), status, error, at)


def run_ended_idle(run: Run, first: Event | None) -> None:
    """Emits the span of a run that ended while no worker held it (cancelled as it slept,
    waited, or was handed back; `first`: its first event), with the ids and start a
    worker's would have had, once its end is saved. A run never claimed has none: its
    span starts at its first claim."""
    tracer = _tracer()
    if tracer is None or run.started_at is None:
        return
    at = run.ended_at if run.ended_at is not None else run.started_at
    _emit_run(tracer, run, _run_trace(run.id, first), run.status, run.error, at)


def _emit_run(
    tracer: Tracer,
    run: Run,
    trace: RunTrace,
    status: RunStatus,
    error: dict[str, Any] | None,
    at: float,
) -> None:
    started = run.started_at if run.started_at is not None else at
    attributes = {**_run_attributes(run), "stepstone.run.status": status.value}
    token = _CHOSEN.set((trace.span.trace_id, trace.span.span_id))
    try:
        span = tracer.start_span(
            f"run {run.function_id}",
            context=_context(trace.parent),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            start_time=_ns(started),
        )
    finally:
        _CHOSEN.reset(token)
    if status is RunStatus.FAILED:
        _fail(span, error)
    elif error is not None:  # a timeout: cancelled, with the reason
        span.set_attribute("stepstone.run.error", str(error.get("message") or ""))
    span.end(end_time=_ns(max(started, at)))


# -- steps -------------------------------------------------------------------------------
class Attempt:
    """A step attempt's span, current while its handler runs (the handler's own spans are
    its children). The checkpoint that saves a failure, in the handler's task before the
    attempt ends, sets its status; a success is saved after it ended, with no span more."""

    def __init__(self, span: Span | None, hashed_id: str) -> None:
        self._span = span
        self.hashed_id = hashed_id
        self.saved = False
        self._attached: Any = None
        if span is not None:
            self._attached = otel_context.attach(otel_trace.set_span_in_context(span))
            # left set after the step (a step awaited at once runs in the function's own
            # task): harmless, as a checkpoint takes it only for its own hashed id
            _ATTEMPT.set(self)

    def save(self, step: StepRecord) -> None:
        if self._span is not None:
            self.saved = True
            _describe(self._span, step)

    def end(self) -> None:
        """Called in the handler's `finally`: an interrupt on its way out (a lost lease, a
        cancel) means the attempt was dropped, not completed."""
        span, self._span = self._span, None
        if span is None:
            return
        otel_context.detach(self._attached)
        if not self.saved:
            leaving = sys.exc_info()[1]
            dropped = leaving is not None and not isinstance(leaving, Exception)
            status = "abandoned" if dropped else StepStatus.COMPLETED.value
            span.set_attribute("stepstone.step.status", status)
        span.end()


_NO_ATTEMPT = Attempt(None, "")


def step_attempt(
    function_id: str, run_id: str, step_id: str, hashed_id: str, attempt: int
) -> Attempt:
    """Starts the span of one attempt of a `step.run` handler, current until `end`."""
    tracer = _tracer()
    if tracer is None:
        return _NO_ATTEMPT
    attributes: dict[str, Any] = {
        "stepstone.function.id": function_id,
        "stepstone.run.id": run_id,
        "stepstone.step.id": step_id,
        "stepstone.step.kind": "run",
        "stepstone.attempt": attempt,
    }
    return Attempt(tracer.start_span(f"step {step_id}", attributes=attributes), hashed_id)


def _describe(span: Span, step: StepRecord) -> None:
    span.set_attribute("stepstone.step.status", step.status.value)
    if step.wake_at is not None:
        span.set_attribute("stepstone.step.wake_at", step.wake_at)
    if step.status in (StepStatus.RETRYING, StepStatus.FAILED):
        _fail(span, step.error)


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def checkpoint(run: Run, step: StepRecord) -> contextlib.AbstractContextManager[SpanRef | None]:
    """Around a step's checkpoint: the span that stands for the step, whose trace context
    the events it sends (send_event, invoke) carry. A `step.run` handler of this process
    has its attempt's span already; any other step (a sleep, a wait, an invoke, a send, a
    step an SDK app ran) gets a span here, from its start to its checkpoint. Without a
    tracer: a shared empty context, since every checkpoint passes here."""
    tracer = _tracer()
    if tracer is None:
        return _NO_SPAN
    return _checkpoint_span(tracer, run, step)


@contextlib.contextmanager
def _checkpoint_span(tracer: Tracer, run: Run, step: StepRecord) -> Iterator[SpanRef | None]:
    running = _ATTEMPT.get()
    if running is not None and running.hashed_id == step.hashed_id:
        running.save(step)
        yield None  # a step.run: it sends no events
        return
    attributes = {
        **_run_attributes(run),
        "stepstone.step.id": step.id,
        "stepstone.step.kind": step.kind,
        "stepstone.attempt": max(0, step.attempts - 1),
    }
    start = step.started_at if step.kind == "run" else None  # an SDK app's: it ran then
    span = tracer.start_span(
        f"step {step.id}",
        attributes=attributes,
        start_time=None if start is None else _ns(start),
    )
    try:
        with otel_trace.use_span(span):
            yield _span_ref(span)
    finally:
        _describe(span, step)
        end = step.ended_at if step.kind == "run" and step.ended_at is not None else None
        span.end(end_time=None if end is None else _ns(end))


# -- calls to SDK apps -------------------------------------------------------------------
@contextlib.contextmanager
def call_request(
    url: str, function_id: str, run_id: str, headers: dict[str, str]
) -> Iterator[None]:
    """A CLIENT span around one call request to an SDK app; `headers` gets its
    `traceparent` and the trace's `tracestate`, so an app that traces continues the run's
    trace."""
    tracer = _tracer()
    if tracer is None:
        yield
        return
    attributes = {
        "stepstone.function.id": function_id,
        "stepstone.run.id": run_id,
        "url.full": url,
        "http.request.method": "POST",
    }
    with tracer.start_as_current_span(
        f"call {function_id}", kind=SpanKind.CLIENT, attributes=attributes
    ):
        _PROPAGATOR.inject(headers)
        yield


@contextlib.contextmanager
def incoming(traceparent: str | None, tracestate: str | None = None) -> Iterator[None]:
    """The trace a request came with (its `traceparent` header, and its `tracestate`
    unless invalid: it is dropped then) is current for the block, unless a span is
    already (a server the user instrumented has its own)."""
    if traceparent is None or _tracer() is None:
        yield
        return
    if otel_trace.get_current_span().get_span_context().is_valid:
        yield
        return
    carrier = {"traceparent": traceparent}
    state = parse_tracestate(tracestate)
    if state is not None:
        carrier["tracestate"] = state
    token = otel_context.attach(_PROPAGATOR.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)
