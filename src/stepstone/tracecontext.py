"""A run's place in a trace, as values: W3C `traceparent` strings and the ids a run's
spans share. Pure (no OpenTelemetry needed), so every worker that touches a run computes
the same ids from what is stored: the run id and its trigger event's `traceparent`.

A run continues the trace of the event that started it (the span that sent it is its
span's parent); an event sent outside any trace starts a trace of its run's own, whose id
is derived from the run id. The run's span id is always derived from the run id: its
claims, invocations and steps are children of that span in whichever process they run,
and the worker that ends the run emits the span itself, with that id (tracing.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
SAMPLED = 0x01
RULE = "a W3C traceparent: 00-<32 hex digits>-<16 hex digits>-<2 hex digits>, ids not all zero"


@dataclass(frozen=True)
class SpanRef:
    """A span, as a traceparent names it."""

    trace_id: int
    span_id: int
    flags: int = SAMPLED

    @property
    def traceparent(self) -> str:
        return format_traceparent(self.trace_id, self.span_id, self.flags)


def parse_traceparent(text: str | None) -> SpanRef | None:
    """The span a version-00 traceparent names; None when `text` is not one."""
    if text is None:
        return None
    found = _TRACEPARENT.fullmatch(text)
    if found is None:
        return None
    trace_id, span_id = int(found.group(1), 16), int(found.group(2), 16)
    if trace_id == 0 or span_id == 0:
        return None
    return SpanRef(trace_id, span_id, int(found.group(3), 16))


def format_traceparent(trace_id: int, span_id: int, flags: int = SAMPLED) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


def _derived(what: str, run_id: str, size: int) -> int:
    digest = hashlib.sha256(f"stepstone {what} {run_id}".encode()).digest()
    return int.from_bytes(digest[:size], "big") or 1  # an id is never all zero


@dataclass(frozen=True)
class RunTrace:
    """The run's span (`span`) and the span it continues (`parent`, None: a root)."""

    span: SpanRef
    parent: SpanRef | None

    @classmethod
    def of(cls, run_id: str, event_trace: str | None) -> RunTrace:
        """From the run id and the `traceparent` its trigger event carried (or None)."""
        parent = parse_traceparent(event_trace)
        span_id = _derived("run span", run_id, 8)
        if parent is None:
            return cls(SpanRef(_derived("trace", run_id, 16), span_id, SAMPLED), None)
        return cls(SpanRef(parent.trace_id, span_id, parent.flags), parent)
