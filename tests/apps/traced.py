"""An app for the traces' tests: a run of three steps with a retry and a sleep, which sends
an event and invokes a function.

With `$STEPSTONE_TEST_SPANS` set (a folder), importing it sets up the OpenTelemetry SDK
with an exporter that appends each finished span to `<folder>/<$WORKER_NAME or pid>.jsonl`,
one JSON object a line, written as the span ends (a killed process keeps what it wrote).
Run it with `python -m stepstone worker tests.apps.traced:app --database URL`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import stepstone

NAP = 3.0  # seconds the run sleeps: time for the test to stop the first worker


def span_record(span: ReadableSpan) -> dict[str, Any]:
    context, parent = span.context, span.parent
    assert context is not None
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": None if parent is None else f"{parent.span_id:016x}",
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [event.name for event in span.events],
        "start": span.start_time,
        "end": span.end_time,
        "pid": os.getpid(),
    }


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            os.write(self._fd, (json.dumps(span_record(span)) + "\n").encode())
        return SpanExportResult.SUCCESS


def _install_exporter() -> None:
    folder = os.environ.get("STEPSTONE_TEST_SPANS")
    if not folder:
        return
    name = os.environ.get("WORKER_NAME") or str(os.getpid())
    provider = TracerProvider()
    exporter = JsonLinesExporter(Path(folder) / f"{name}.jsonl")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def read_spans(folder: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def _flaky(ctx: stepstone.Context) -> str:
    if ctx.attempt == 0:  # inside the handler: the step's attempt
        raise RuntimeError("the first attempt fails")
    return f"ok at attempt {ctx.attempt}"


def make_app(database: str | None = None) -> stepstone.App:
    app = stepstone.App("traced", database=database, backoff=lambda attempt: 0.05)

    @app.function(id="traced", trigger="traced/go")
    async def traced(ctx: stepstone.Context) -> dict[str, Any]:
        one = await ctx.step.run("one", lambda: 1)
        flaky = await ctx.step.run("flaky", _flaky, ctx)
        await ctx.step.sleep("nap", NAP)
        three = await ctx.step.run("three", lambda: 3)
        await ctx.step.send_event("notify", stepstone.Event("traced/notified", {"by": ctx.run_id}))
        child = await ctx.step.invoke("call-child", function="traced-child", data={"n": 2})
        return {"one": one, "flaky": flaky, "three": three, "child": child}

    @app.function(id="traced-notified", trigger="traced/notified")
    async def notified(ctx: stepstone.Context) -> str:
        return str(await ctx.step.run("note", lambda: "noted"))

    @app.function(id="traced-child", trigger=None)
    async def child(ctx: stepstone.Context) -> int:
        return int(await ctx.step.run("double", lambda: ctx.event.data["n"] * 2))

    return app


_install_exporter()
app = make_app()
