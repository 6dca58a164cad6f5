"""A run's place in a trace, as values: W3C `traceparent` and `tracestate` strings and the
ids a run's spans share. Pure (no OpenTelemetry needed), so every worker that touches a run
computes the same ids from what is stored: the run id and its trigger event's
`traceparent` (and its `tracestate`, which the run's spans carry on).

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
# W3C Trace Context, tracestate: a list member is key=value; a key is a simple key or a
# tenant@system key; a value is up to 256 printable ASCII characters but `,` and `=`,
# not ending in a space
_KEY_CHARS = r"[a-z0-9_\-*/]"
_TRACESTATE_MEMBER = re.compile(
    rf"(?P<key>[a-z]{_KEY_CHARS}{{0,255}}|[a-z0-9]{_KEY_CHARS}{{0,240}}@[a-z]{_KEY_CHARS}{{0,13}})"
    r"=(?P<value>[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e])"
)
TRACESTATE_MEMBERS = 32  # list members at most
TRACESTATE_LENGTH = 512  # characters at most, as stepstone keeps and sends it


@dataclass(frozen=True)
class SpanRef:
    """A span, as a traceparent names it, and the tracestate of its trace (`state`: a
    valid tracestate header value, or None)."""

    trace_id: int
    span_id: int
    flags: int = SAMPLED
    state: str | None = None

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


def parse_tracestate(text: str | None) -> str | None:
    """A tracestate header value as stepstone keeps it (its list members joined by `,`,
    without the optional spaces and empty members), or None when `text` is None, empty or
    invalid: more than TRACESTATE_MEMBERS members, a member that is not key=value by the
    W3C rules, a key twice, or longer than TRACESTATE_LENGTH. An invalid one is dropped,
    as the W3C recommends, not refused: it is only a vendor's hint."""
    if not text or not isinstance(text, str):
        return None
    members = [member.strip(" \t") for member in text.split(",")]
    members = [member for member in members if member]
    if not members or len(members) > TRACESTATE_MEMBERS:
        return None
    keys = set()
    for member in members:
        found = _TRACESTATE_MEMBER.fullmatch(member)
        if found is None or found.group("key") in keys:
            return None
        keys.add(found.group("key"))
    kept = ",".join(members)
    return kept if len(kept) <= TRACESTATE_LENGTH else None


def _derived(what: str, run_id: str, size: int) -> int:
    digest = hashlib.sha256(f"stepstone {what} {run_id}".encode()).digest()
    return int.from_bytes(digest[:size], "big") or 1  # an id is never all zero


@dataclass(frozen=True)
class RunTrace:
    """The run's span (`span`) and the span it continues (`parent`, None: a root)."""

    span: SpanRef
    parent: SpanRef | None

    @classmethod
    def of(cls, run_id: str, event_trace: str | None, event_state: str | None = None) -> RunTrace:
        """From the run id and the `traceparent` and `tracestate` its trigger event carried
        (or None): the run's span carries the sender's tracestate on."""
        parent = parse_traceparent(event_trace)
        span_id = _derived("run span", run_id, 8)
        if parent is None:  # a trace of the run's own: no vendor has a say in it yet
            return cls(SpanRef(_derived("trace", run_id, 16), span_id, SAMPLED), None)
        state = parse_tracestate(event_state)
        parent = SpanRef(parent.trace_id, parent.span_id, parent.flags, state)
        return cls(SpanRef(parent.trace_id, span_id, parent.flags, state), parent)
