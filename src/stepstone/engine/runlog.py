"""One log line per run event that matters, for whoever watches a worker's output.

The engine calls it at three points, each after the write it reports succeeded:
`started` when an invocation begins, `step_saved` when a step's state is saved, and
`outcome` when the invocation's outcome is saved. Ends and failures are logged at INFO
and above, each step at DEBUG. A failing step's traceback comes with its first failure
only; its retries get one line each. Every record carries the same facts as fields
(`record.stepstone`), which `--log-format json` prints.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import ops
from ..durations import format_duration as duration
from ..errors import ConfigError
from ..records import Run, StepRecord, StepStatus

if TYPE_CHECKING:
    from ..registry import Registry
    from ..store import Claim

log = logging.getLogger("stepstone.runs")

# per run id, the hashed step ids ("" for the code outside steps) and stack digests whose
# traceback was shown; bounded, since a run that is never seen again leaves its keys behind
_SHOWN: OrderedDict[str, set[str]] = OrderedDict()
_SHOWN_MAX = 10_000  # runs


def when(at: float, now: float) -> str:
    """A time to come, as the local clock time and how far off it is."""
    moment = datetime.fromtimestamp(at)
    today = datetime.fromtimestamp(now).date() == moment.date()
    text = moment.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S")
    return f"{text} (in {duration(max(0.0, at - now))})"


def _label(run: Run) -> str:
    return f"{run.function_id} {run.id}"


def _fields(run: Run, event: str, **more: Any) -> dict[str, Any]:
    return {
        "event": event,
        "function_id": run.function_id,
        "run_id": run.id,
        **{k: v for k, v in more.items() if v is not None},
    }


def _emit(level: int, message: str, fields: dict[str, Any]) -> None:
    if log.isEnabledFor(level):
        log.log(level, message, extra={"stepstone": fields})


def _first_time(run_id: str, key: str) -> bool:
    """True the first time a traceback of this step (or of the code outside steps) comes."""
    shown = _SHOWN.get(run_id)
    if shown is None:
        shown = _SHOWN[run_id] = set()
        while len(_SHOWN) > _SHOWN_MAX:
            _SHOWN.popitem(last=False)
    if key in shown:
        return False
    shown.add(key)
    return True


def _forget(run_id: str) -> None:
    _SHOWN.pop(run_id, None)


def _error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return "unknown error"
    name, message = error.get("name") or "Error", error.get("message") or ""
    return f"{name}: {message}" if message else str(name)


def _with_stack(message: str, error: dict[str, Any] | None, run_id: str, key: str) -> str:
    """The message, with the error's traceback the first time this step (or the code outside
    steps) fails in this run, unless the same traceback was shown already (a run that fails
    with its step's error)."""
    stack = str((error or {}).get("stack") or "")
    if not stack:
        return message
    new_stack = _first_time(run_id, "stack:" + hashlib.sha1(stack.encode()).hexdigest())
    new_key = _first_time(run_id, key)
    if new_key and new_stack:
        return f"{message}\n{stack.rstrip()}"
    return message


def _attempts(registry: Registry, run: Run) -> int | None:
    try:
        return registry.get(run.function_id).max_attempts
    except ConfigError:
        return None


def started(claim: Claim, now: float) -> None:
    """An invocation of the claimed run begins: its first (INFO) or a later one (DEBUG)."""
    run = claim.run
    if not log.isEnabledFor(logging.INFO if claim.lease.fence == 1 else logging.DEBUG):
        return  # every invocation passes here: its line is built only to be shown
    event = claim.events[0].name if claim.events else None
    if claim.lease.fence == 1:
        trigger = f" by {event}" if event else ""
        _emit(logging.INFO, f"{_label(run)} started{trigger}", _fields(run, "run.started"))
    else:
        _emit(logging.DEBUG, f"{_label(run)} resumed", _fields(run, "run.resumed"))


_AT_DEBUG = frozenset({StepStatus.COMPLETED, StepStatus.SLEEPING})


def step_saved(registry: Registry, run: Run, step: StepRecord, now: float) -> None:
    """A step's state was saved: completed (DEBUG), an attempt failed, or out of attempts."""
    quiet = step.status in _AT_DEBUG
    if quiet and not log.isEnabledFor(logging.DEBUG):
        return  # every step passes here: its line is not even built unless it is shown
    label, name = _label(run), f"step {step.id!r}"
    if step.status is StepStatus.COMPLETED:
        took = (
            ""
            if step.started_at is None or step.ended_at is None
            else f" in {duration(step.ended_at - step.started_at)}"
        )
        _emit(
            logging.DEBUG,
            f"{label} {name} completed{took}",
            _fields(run, "step.completed", step=step.id, attempts=step.attempts),
        )
    elif step.status is StepStatus.RETRYING:
        total = _attempts(registry, run)
        of = f" of {total}" if total else ""
        next_at = "" if step.wake_at is None else f"; next attempt at {when(step.wake_at, now)}"
        message = (
            f"{label} {name} failed (attempt {step.attempts}{of}): "
            f"{_error_text(step.error)}{next_at}"
        )
        fields = _fields(
            run,
            "step.retrying",
            step=step.id,
            attempt=step.attempts,
            attempts=total,
            error=_short(step.error),
            next_attempt_at=step.wake_at,
        )
        _emit(logging.WARNING, _with_stack(message, step.error, run.id, step.hashed_id), fields)
    elif step.status is StepStatus.FAILED:
        message = (
            f"{label} {name} failed after {step.attempts} attempt"
            f"{'' if step.attempts == 1 else 's'}: {_error_text(step.error)}"
        )
        fields = _fields(
            run, "step.failed", step=step.id, attempts=step.attempts, error=_short(step.error)
        )
        _emit(logging.WARNING, _with_stack(message, step.error, run.id, step.hashed_id), fields)
    elif step.status is StepStatus.SLEEPING and step.wake_at is not None:
        _emit(
            logging.DEBUG,
            f"{label} {name} sleeps until {when(step.wake_at, now)}",
            _fields(run, "step.sleeping", step=step.id, until=step.wake_at),
        )


def outcome(
    registry: Registry,
    claim: Claim,
    outcome: ops.Outcome,
    stop: ops.Stop | None,
    started_at: float,
    now: float,
) -> None:
    """The invocation's outcome was saved: the run ended, will be retried, or waits."""
    run = claim.run
    if not log.isEnabledFor(logging.DEBUG) and _quiet(outcome, stop):
        _forget(run.id)
        return  # every invocation passes here: its line is built only to be shown
    label = _label(run)
    seconds = max(0.0, now - (run.started_at or started_at))
    took = duration(seconds)
    ended = _ending(outcome, stop, took)
    if ended is not None:
        level, kind, text, error = ended
        message = _with_stack(f"{label} {text}", error, run.id, "")
        _emit(level, message, _fields(run, f"run.{kind}", duration=seconds, error=_short(error)))
        _forget(run.id)
    elif isinstance(outcome, ops.RunRetry):
        total = _attempts(registry, run)
        of = f" of {total}" if total else ""
        message = (
            f"{label} failed (attempt {run.attempt + 1}{of}): {_error_text(outcome.error)}; "
            f"next attempt at {when(outcome.at, now)}"
        )
        fields = _fields(
            run,
            "run.retrying",
            attempt=run.attempt + 1,
            attempts=total,
            error=_short(outcome.error),
            next_attempt_at=outcome.at,
        )
        _emit(logging.WARNING, _with_stack(message, outcome.error, run.id, ""), fields)
    elif isinstance(outcome, ops.Suspended):
        why = [each.detail for each in outcome.suspensions]
        until = "" if outcome.at is None else f" until {when(outcome.at, now)}"
        _emit(
            logging.DEBUG,
            f"{label} suspended{until}: {', '.join(why) or 'waiting'}",
            _fields(run, "run.suspended", until=outcome.at, why=why),
        )


def _quiet(outcome: ops.Outcome, stop: ops.Stop | None) -> bool:
    """Whether the line of this outcome would be below INFO, or INFO that is not shown."""
    if isinstance(outcome, (ops.RunFailed, ops.RunRetry)) and stop is None:
        return False  # ERROR and WARNING: shown unless logging is off altogether
    if isinstance(outcome, ops.Suspended) and stop is None:
        return True  # DEBUG
    return not log.isEnabledFor(logging.INFO)  # an end: completed or cancelled


def _ending(
    outcome: ops.Outcome, stop: ops.Stop | None, took: str
) -> tuple[int, str, str, dict[str, Any] | None] | None:
    """(level, kind, text, error) of an outcome that ends the run, else None."""
    if stop is not None:
        why = "" if stop == ops.CANCELLED else f" ({stop})"
        return logging.INFO, "cancelled", f"cancelled after {took}{why}", None
    if isinstance(outcome, ops.RunCompleted):
        return logging.INFO, "completed", f"completed in {took}", None
    if isinstance(outcome, ops.RunFailed):
        text = f"failed after {took}: {_error_text(outcome.error)}"
        return logging.ERROR, "failed", text, outcome.error
    return None


def cancelled_idle(run: Run) -> None:
    """A run that no worker was executing (queued, sleeping, waiting) was cancelled."""
    end = run.ended_at if run.ended_at is not None else run.created_at
    took = duration(max(0.0, end - (run.started_at or run.created_at)))
    _emit(logging.INFO, f"{_label(run)} cancelled after {took}", _fields(run, "run.cancelled"))
    _forget(run.id)


def _short(error: dict[str, Any] | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"name": error.get("name"), "message": error.get("message")}
