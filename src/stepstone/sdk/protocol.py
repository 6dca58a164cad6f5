"""The SDK call protocol: the request stepstone sends, the answers it reads (WIRE.md).

A call request runs an SDK function from the top (`stepId=step`, discovery) or one of
its steps (`stepId=<hashed id>`), with the run's memoized steps. The answer is typed
here: `Done` (200), `Ops` (206, a list of step ops), or `CallFailed` (the whole call
failed: an error status, or no answer at all).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, ValidationError

REQUEST_VERSION = 2
DISCOVERY = "step"  # the stepId that runs the function from the top
RETRY_AFTER_MIN = 1.0
RETRY_AFTER_MAX = 86400.0
NO_RETRY_HEADER = "x-inngest-no-retry"
RETRY_AFTER_HEADER = "retry-after"
SEND_EVENT_TYPE = "step.sendEvent"


# stepstone's lifecycle events and the SDKs' names for them: an SDK function listens for
# (and the npm SDK checks its trigger event against) the SDK's names
_SDK_NAMES = {
    "stepstone/function.failed": "inngest/function.failed",
    "stepstone/function.finished": "inngest/function.finished",
    "stepstone/function.cancelled": "inngest/function.cancelled",
    "stepstone/function.invoked": "inngest/function.invoked",
    "stepstone/scheduled.timer": "inngest/scheduled.timer",
}
_STEPSTONE_NAMES = {sdk: ours for ours, sdk in _SDK_NAMES.items()}


def to_sdk_event_name(name: str) -> str:
    """The name an SDK knows a stepstone lifecycle event by (others are unchanged)."""
    return _SDK_NAMES.get(name, name)


def from_sdk_event_name(name: str) -> str:
    """The stepstone event an SDK's lifecycle event name stands for (others are unchanged)."""
    return _STEPSTONE_NAMES.get(name, name)


class ProtocolError(ValueError):
    """An answer stepstone cannot read (an unknown op, a malformed body): not retriable."""


# -- the call request ------------------------------------------------------------------
def memo_data(value: Any) -> dict[str, Any]:
    """The memo of a finished step, sleep, wait or invoke: exactly `{"data": value}`."""
    return {"data": value}


def memo_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """The memo of a step out of attempts: exactly `{"error": {name, message, stack}}`."""
    return {
        "error": {
            "name": str(error.get("name") or "Error"),
            "message": str(error.get("message") or ""),
            "stack": str(error.get("stack") or ""),
        }
    }


def event_payload(event: Mapping[str, Any]) -> dict[str, Any]:
    """An event as the SDKs read it: `name`, `data` an object, `id` a string, `ts` an int."""
    out = {key: value for key, value in event.items() if value is not None}
    if isinstance(out.get("name"), str):
        out["name"] = to_sdk_event_name(out["name"])
    out["data"] = out.get("data") or {}
    if "ts" in out:
        out["ts"] = int(out["ts"])
    return out


@dataclass(frozen=True)
class CallRequest:
    run_id: str
    events: Sequence[Mapping[str, Any]]
    steps: Mapping[str, dict[str, Any] | None]  # hashed id -> memo
    stack: Sequence[str]  # hashed ids in completion order
    attempt: int  # of the step being retried, or of the function for discovery
    max_attempts: int
    disable_immediate_execution: bool = False

    def body(self) -> dict[str, Any]:
        events = [event_payload(e) for e in self.events]
        return {
            "event": events[0],
            "events": events,
            "steps": dict(self.steps),
            "ctx": {
                "run_id": self.run_id,
                "attempt": self.attempt,
                "max_attempts": self.max_attempts,
                "disable_immediate_execution": self.disable_immediate_execution,
                "use_api": False,
                "stack": {"stack": list(self.stack), "current": max(len(self.stack) - 1, 0)},
            },
            "use_api": False,
            "version": REQUEST_VERSION,
        }


def step_url(registered: str, step_id: str) -> str:
    """The registered step URL with its `stepId` set to `step_id`."""
    parts = urlsplit(registered)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "stepId"]
    query.append(("stepId", step_id))
    return urlunsplit(parts._replace(query=urlencode(query)))


def request_headers(*, signature: str | None, server_kind: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "X-Inngest-Req-Version": str(REQUEST_VERSION),
        "X-Inngest-Server-Kind": server_kind,
    }
    if signature is not None:
        headers["X-Inngest-Signature"] = signature
    return headers


# -- ops -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    id: str  # the hashed id
    step_id: str  # the user's id, with ":n" for its n-th repeat
    display_name: str

    @property
    def hashed_id(self) -> str:
        return self.id


@dataclass(frozen=True)
class StepRun(Op):
    data: Any = None
    is_send: bool = False


@dataclass(frozen=True)
class StepError(Op):
    """An attempt of the step failed; the SDK thinks more remain."""

    error: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepFailed(Op):
    """The step failed for good: memoize the error and call again."""

    error: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepPlanned(Op):
    """Call back with `stepId=<id>` to run it."""

    parallel_mode: str | None = None
    is_send: bool = False


@dataclass(frozen=True)
class Sleep(Op):
    until: float  # seconds since the epoch


@dataclass(frozen=True)
class WaitForEvent(Op):
    event: str
    timeout: float  # seconds
    if_: str | None = None


@dataclass(frozen=True)
class InvokeFunction(Op):
    function_id: str
    data: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None


@dataclass(frozen=True)
class RunComplete(Op):
    data: Any = None


AnyOp = (
    StepRun
    | StepError
    | StepFailed
    | StepPlanned
    | Sleep
    | WaitForEvent
    | InvokeFunction
    | RunComplete
)


# -- answers ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Done:
    output: Any


@dataclass(frozen=True)
class Ops:
    ops: list[AnyOp]
    no_retry: bool = False  # X-Inngest-No-Retry: true
    retry_at: float | None = None  # Retry-After, clamped


@dataclass(frozen=True)
class CallFailed:
    error: dict[str, Any]
    retriable: bool
    retry_at: float | None = None
    status: int | None = None  # None: no answer (a timeout, a refused connection)


Answer = Done | Ops | CallFailed


class _Userland(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    index: int | None = None


class _RawOp(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    op: str
    name: str | None = None
    displayName: str | None = None  # the SDKs spell it so
    opts: dict[str, Any] | None = None
    data: Any = None
    error: Any = None
    userland: _Userland | None = None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def parse_retry_after(
    value: str, *, now: float, floor: float = RETRY_AFTER_MIN, ceiling: float = RETRY_AFTER_MAX
) -> float:
    """The time a Retry-After value (seconds, ISO 8601 or an HTTP date) names, clamped."""
    text = value.strip()
    try:
        delay = float(text)
        if not math.isfinite(delay):
            raise ValueError(text)
    except ValueError:
        when: datetime | None = None
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            try:
                when = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                raise ProtocolError(
                    f"Retry-After {value!r} is neither seconds, an ISO 8601 time nor an HTTP date"
                ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when.timestamp() - now
    return now + min(max(delay, floor), ceiling)


def normalize_error(raw: Any, *, fallback: str = "the SDK reported an error") -> dict[str, Any]:
    """An SDK's error (py `{code, message, name, stack}`, js `{name, message, stack, ...}`)."""
    if isinstance(raw, Mapping):
        return {
            "name": str(raw.get("name") or "Error"),
            "message": str(raw.get("message") or fallback),
            "stack": str(raw.get("stack") or ""),
        }
    if isinstance(raw, str) and raw:
        return {"name": "Error", "message": raw, "stack": ""}
    return {"name": "Error", "message": fallback, "stack": ""}


def _step_id(raw: _RawOp) -> str:
    if raw.userland is not None:
        base = raw.userland.id
        return f"{base}:{raw.userland.index}" if raw.userland.index else base
    return raw.displayName or raw.name or raw.id


def _duration(text: str, what: str) -> float:
    from ..durations import parse_duration
    from ..errors import ConfigError

    try:
        return parse_duration(text, what=what)
    except ConfigError as exc:
        raise ProtocolError(str(exc)) from None


def _wake_time(name: str, now: float, what: str) -> float:
    """A sleep's `name`: an ISO 8601 wake time (py, js sleepUntil) or a duration (js sleep)."""
    if name[:1].isdigit() and ("T" in name or name.count("-") >= 2):
        try:
            when = datetime.fromisoformat(name.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return when.timestamp()
    return now + _duration(name, what)


def parse_op(item: Any, *, now: float) -> AnyOp:
    try:
        raw = _RawOp.model_validate(item)
    except ValidationError as exc:
        raise ProtocolError(f"an op of the answer is malformed: {exc}") from None
    opts = raw.opts or {}
    base = {"id": raw.id, "step_id": _step_id(raw), "display_name": raw.displayName or raw.id}
    where = f"op {raw.op} of step {base['step_id']!r}"
    is_send = opts.get("type") == SEND_EVENT_TYPE
    if raw.op == "StepRun" or raw.op == "Step":
        return StepRun(**base, data=raw.data, is_send=is_send)
    if raw.op == "StepError":
        return StepError(**base, error=normalize_error(raw.error))
    if raw.op == "StepFailed":
        return StepFailed(**base, error=normalize_error(raw.error))
    if raw.op == "StepPlanned":
        mode = opts.get("parallelMode")
        return StepPlanned(
            **base, parallel_mode=mode if isinstance(mode, str) else None, is_send=is_send
        )
    if raw.op == "Sleep":
        if not raw.name:
            raise ProtocolError(f"{where} has no duration or wake time in its name")
        return Sleep(**base, until=_wake_time(raw.name, now, f"{where} name"))
    if raw.op == "WaitForEvent":
        if not raw.name or not isinstance(opts.get("timeout"), str):
            raise ProtocolError(f"{where} needs the event name in name and opts.timeout")
        condition = opts.get("if")
        return WaitForEvent(
            **base,
            event=from_sdk_event_name(raw.name),
            timeout=_duration(opts["timeout"], f"{where} timeout"),
            if_=condition if isinstance(condition, str) and condition else None,
        )
    if raw.op == "InvokeFunction":
        function_id = opts.get("function_id")
        if not isinstance(function_id, str) or not function_id:
            raise ProtocolError(f"{where} has no opts.function_id")
        payload = opts.get("payload") or {}
        data = payload.get("data") if isinstance(payload, Mapping) else None
        timeout = opts.get("timeout")
        return InvokeFunction(
            **base,
            function_id=function_id,
            data=dict(data) if isinstance(data, Mapping) else {},
            timeout=_duration(timeout, f"{where} timeout") if isinstance(timeout, str) else None,
        )
    if raw.op == "RunComplete":
        return RunComplete(**base, data=raw.data)
    if raw.op == "StepNotFound":
        raise ProtocolError(
            f"the app did not find the step {base['step_id']!r} it was asked to run: was it "
            "renamed or removed from the function?"
        )
    raise ProtocolError(
        f"the app answered with op {raw.op!r} (step {base['step_id']!r}), which stepstone does "
        "not support"
    )


def _json(body: bytes, what: str) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"{what} is not JSON: {exc}") from None


def parse_answer(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    retry_after_min: float = RETRY_AFTER_MIN,
) -> Answer:
    """The SDK's answer to a call request, typed; a body stepstone cannot read gives a
    non-retriable CallFailed saying why."""
    try:
        return _parse(status, headers, body, now=now, floor=retry_after_min)
    except ProtocolError as exc:
        error = {"name": "ProtocolError", "message": str(exc), "stack": ""}
        return CallFailed(error, retriable=False, status=status)


def _parse(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float, floor: float
) -> Answer:
    no_retry_text = (_header(headers, NO_RETRY_HEADER) or "").strip().lower()
    retry_after_text = _header(headers, RETRY_AFTER_HEADER)
    retry_at = (
        parse_retry_after(retry_after_text, now=now, floor=floor) if retry_after_text else None
    )
    if status == 201:  # a streamed answer: keep-alive spaces, then the real one as JSON
        wrapped = _json(body, "the streamed answer")
        if not isinstance(wrapped, Mapping) or not isinstance(wrapped.get("status"), int):
            raise ProtocolError("the streamed answer has no status")
        inner = wrapped.get("body")
        inner_bytes = inner.encode() if isinstance(inner, str) else json.dumps(inner).encode()
        inner_headers = wrapped.get("headers")
        return _parse(
            wrapped["status"],
            inner_headers if isinstance(inner_headers, Mapping) else {},
            inner_bytes,
            now=now,
            floor=floor,
        )
    if status == 200:
        return Done(_json(body, "the function's output"))
    if status == 206:
        items = _json(body, "the ops")
        if not isinstance(items, list) or not items:
            raise ProtocolError("a 206 answer must hold a non-empty JSON array of ops")
        return Ops(
            [parse_op(item, now=now) for item in items],
            no_retry=no_retry_text == "true",
            retry_at=retry_at,
        )
    try:
        raw = _json(body, "the error")
    except ProtocolError:
        raw = body.decode(errors="replace")[:2000]
    error = normalize_error(raw, fallback=f"the app answered HTTP {status}")
    if no_retry_text in ("true", "false"):
        retriable = no_retry_text == "false"
    else:
        retriable = status >= 500 or status in (401, 403, 404, 408, 409, 429)
    return CallFailed(error, retriable=retriable, retry_at=retry_at, status=status)


def no_answer(reason: str) -> CallFailed:
    """A call that got no answer (a timeout, a refused connection): a retriable attempt."""
    return CallFailed({"name": "CallError", "message": reason, "stack": ""}, retriable=True)
