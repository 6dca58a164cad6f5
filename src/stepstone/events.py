"""Event intake: validate what users send, before anything is stored."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import EventError, SerializationError
from .ids import new_id
from .limits import Limits
from .records import Event
from .serde import dumps, size_of
from .tracecontext import RULE as TRACE_RULE
from .tracecontext import parse_traceparent, parse_tracestate

RESERVED_PREFIX = "stepstone/"
MAX_ID_LENGTH = 256
MAX_TS = 253_402_300_799_999  # the end of year 9999, in milliseconds
TS_RULE = f"milliseconds since the epoch (an integer from 0 to {MAX_TS}, the end of year 9999)"


def text_problem(text: str) -> str | None:
    """What keeps `text` from being stored as text by every store, or None.

    PostgreSQL's text holds no NUL, and a lone surrogate (JSON's "\\ud800") is not Unicode:
    neither store could encode it.
    """
    if "\x00" in text:
        return "must not hold a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(exc.object[exc.start])
        return f"contains a lone surrogate (\\u{code:04x}): it is not Unicode text"
    return None


def as_event_list(
    events: Event | Mapping[str, Any] | Sequence[Event | Mapping[str, Any]],
) -> list[Any]:
    if isinstance(events, (Event, Mapping)):
        return [events]
    if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
        raise EventError(
            f"expected an Event, a dict or a list of them, got {type(events).__name__}"
        )
    return list(events)


def validate(
    raw: Event | Mapping[str, Any], index: int, limits: Limits, *, internal: bool = False
) -> tuple[Event, str]:
    """A complete Event (id and ts set) and its data as JSON, or EventError saying what is wrong."""
    where = f"event {index}"
    if isinstance(raw, Event):
        fields: dict[str, Any] = {
            "name": raw.name,
            "data": raw.data,
            "id": raw.id,
            "ts": raw.ts,
            "user": raw.user,
            "v": raw.v,
            "meta": raw.meta,
            "trace": raw.trace,
            "tracestate": raw.tracestate,
        }
    elif isinstance(raw, Mapping):
        fields = dict(raw)
        unknown = set(fields) - {"name", "data", "id", "ts", "user", "v", "meta"}
        if unknown:
            raise EventError(
                f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                "an event has name, data, id, ts, user, v and meta"
            )
    else:
        raise EventError(f"{where}: expected an object, got {type(raw).__name__}")
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip():
        raise EventError(f"{where}: 'name' is required and must be a non-empty string")
    if len(name) > limits.max_event_name:
        raise EventError(f"{where}: 'name' is longer than {limits.max_event_name} characters")
    _check_text(where, "name", name)
    if name.startswith(RESERVED_PREFIX) and not internal:
        raise EventError(f"{where}: names starting with {RESERVED_PREFIX!r} are reserved")
    data = fields.get("data")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise EventError(f"{where}: 'data' must be a JSON object, got {type(data).__name__}")
    event_id = fields.get("id")
    if event_id is not None and (
        not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID_LENGTH
    ):
        raise EventError(f"{where}: 'id' must be a string of 1-{MAX_ID_LENGTH} characters")
    if event_id is not None:
        _check_text(where, "id", event_id)
    ts = fields.get("ts")
    if ts is not None and (
        isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= MAX_TS
    ):
        raise EventError(f"{where}: 'ts' must be {TS_RULE}")
    user = fields.get("user")
    if user is not None and not isinstance(user, Mapping):
        raise EventError(f"{where}: 'user' must be an object")
    v = fields.get("v")
    if v is not None and not isinstance(v, str):
        raise EventError(f"{where}: 'v' must be a string")
    if v is not None:
        _check_text(where, "v", v)
    meta = fields.get("meta")
    if meta is not None and not isinstance(meta, Mapping):
        raise EventError(f"{where}: 'meta' must be an object")
    trace = fields.get("trace")  # an Event's only: the JSON form has no such field
    if trace is not None and (not isinstance(trace, str) or parse_traceparent(trace) is None):
        raise EventError(f"{where}: 'trace' must be {TRACE_RULE}")
    # an invalid tracestate is dropped, not refused (the W3C rule), and so is one that
    # comes without a traceparent: it means nothing on its own
    tracestate = None if trace is None else parse_tracestate(fields.get("tracestate"))
    try:
        data_json = dumps(data, what=f"{where} 'data'")
        user_plain = None if user is None else json.loads(dumps(user, what=f"{where} 'user'"))
        meta_plain = None if meta is None else json.loads(dumps(meta, what=f"{where} 'meta'"))
    except SerializationError as exc:
        raise EventError(str(exc)) from None
    # the stores keep these as JSON text, where a NUL is escaped and a lone surrogate is not
    _check_text(where, "data", data_json)
    for field_name, extra in (("user", user_plain), ("meta", meta_plain)):
        if extra is not None:
            _check_text(where, field_name, dumps(extra))
    size = size_of(data_json) + size_of(name)
    for extra in (user_plain, meta_plain):
        size += 0 if extra is None else size_of(json.dumps(extra))
    if size > limits.max_event_size:
        raise EventError(
            f"{where} ({name!r}) is {size} bytes, over the limit of {limits.max_event_size}"
        )
    event = Event(
        name=name,
        data=json.loads(data_json),
        id=event_id or new_id(),
        ts=ts if ts is not None else int(time.time() * 1000),
        user=user_plain,
        v=v,
        meta=meta_plain,
        trace=trace,
        tracestate=tracestate,
    )
    return event, data_json


def _check_text(where: str, field_name: str, text: str) -> None:
    problem = text_problem(text)
    if problem is not None:
        raise EventError(f"{where}: '{field_name}' {problem}")


def validate_all(
    events: Event | Mapping[str, Any] | Sequence[Event | Mapping[str, Any]],
    limits: Limits,
    *,
    internal: bool = False,
) -> list[tuple[Event, str]]:
    batch = as_event_list(events)
    if not batch:
        raise EventError("no events to send")
    if len(batch) > limits.max_events_per_send:
        raise EventError(
            f"{len(batch)} events in one request, over the limit of {limits.max_events_per_send}"
        )
    return [validate(raw, i, limits, internal=internal) for i, raw in enumerate(batch)]
