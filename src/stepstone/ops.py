"""Ops: the only language between the executor (user code) and the engine (storage).

While a function runs, the executor emits checkpoint ops and waits for each to be
persisted; when the invocation ends it returns one outcome op.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .records import StepRecord


# -- checkpoints: persisted while the function goes on -------------------------------
@dataclass(frozen=True)
class SaveStep:
    """Save a step's state: completed, failed for good, or waiting to be retried."""

    step: StepRecord
    output_json: str | None = None  # the step's output, already serialized
    error: dict[str, Any] | None = None
    alone: bool = False  # no other step of the invocation is running (a hint for the engine)


@dataclass(frozen=True)
class SendEvents:
    """Send events from a step and save the step with their ids, in one transaction."""

    step: StepRecord
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class RegisterWait:
    """The run waits for an event named `event` (CEL `if_`), until `step.wake_at` at the latest."""

    step: StepRecord
    event: str
    if_: str | None


@dataclass(frozen=True)
class StartInvoke:
    """Start a run of `function_id` with `data`; its end resumes this run."""

    step: StepRecord
    function_id: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ExpireStep:
    """A wait or invoke timed out: save `step` unless it ended meanwhile; returns the saved step."""

    step: StepRecord


Checkpoint = SaveStep | SendEvents | RegisterWait | StartInvoke | ExpireStep


# -- outcomes: how an invocation ended ------------------------------------------------
@dataclass(frozen=True)
class RunCompleted:
    output_json: str


@dataclass(frozen=True)
class RunFailed:
    error: dict[str, Any]


@dataclass(frozen=True)
class RunRetry:
    """The code outside steps raised; try the function again at `at`."""

    error: dict[str, Any]
    at: float


class SuspendKind(enum.StrEnum):
    SLEEP = "sleep"  # a step.sleep: only time wakes it
    EVENT = "event"  # a wait_for_event: an event, or its timeout
    INVOKE = "invoke"  # an invoked run's end, or its timeout
    RETRY = "retry"  # a step's next attempt


@dataclass(frozen=True)
class Suspension:
    """Why one part of a run stops this invocation, and until when at the latest."""

    kind: SuspendKind
    until: float | None
    detail: str  # for people: "sleeping until ...", "waiting for 'shop/paid'"


@dataclass(frozen=True)
class Suspended:
    """The run must wait (sleep, event, invoke, step retry): resume no later than `at`."""

    at: float | None
    suspensions: list[Suspension] = field(default_factory=list)

    @property
    def kinds(self) -> set[SuspendKind]:
        return {each.kind for each in self.suspensions}


@dataclass(frozen=True)
class Abandoned:
    """The lease was lost or the run was cancelled: write nothing more."""

    reason: str


Outcome = RunCompleted | RunFailed | RunRetry | Suspended | Abandoned


class StopKind(enum.StrEnum):
    CANCELLED = "cancelled"  # asked to cancel (an operator, a cancel_on rule, singleton)
    TIMED_OUT = "timed out"  # past one of the function's timeouts


@dataclass(frozen=True)
class Stop:
    """Why the engine stops a run it holds; the run ends cancelled."""

    kind: StopKind
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}" if self.detail else self.kind.value


CANCELLED = Stop(StopKind.CANCELLED)
