"""Records: the frozen values stepstone hands out and stores."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED}


class StepStatus(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"  # used all its attempts
    RETRYING = "retrying"  # an attempt failed; another is scheduled
    SLEEPING = "sleeping"
    WAITING = "waiting"
    INVOKING = "invoking"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    ts: int | None = None  # milliseconds since the epoch
    user: dict[str, Any] | None = None
    v: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "data": self.data, "id": self.id, "ts": self.ts}
        if self.user is not None:
            out["user"] = self.user
        if self.v is not None:
            out["v"] = self.v
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Event:
        return cls(
            name=raw["name"],
            data=raw.get("data") or {},
            id=raw.get("id"),
            ts=raw.get("ts"),
            user=raw.get("user"),
            v=raw.get("v"),
        )


@dataclass(frozen=True)
class StepRecord:
    id: str  # the user's id (with ":n" for repeats)
    hashed_id: str
    status: StepStatus
    attempts: int = 0
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: float | None = None
    ended_at: float | None = None
    kind: str = "run"  # run | sleep | wait | invoke | send
    wake_at: float | None = None  # sleeps, waits and invokes: when the run resumes at the latest
    detail: dict[str, Any] | None = None  # kind-specific: a wait's event name, an invoke's target


@dataclass(frozen=True)
class HistoryEntry:
    at: float
    kind: str  # queued | started | step.completed | step.retrying | ... | completed | failed
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    id: str
    function_id: str
    status: RunStatus
    output: Any = None
    error: dict[str, Any] | None = None
    event_ids: list[str] = field(default_factory=list)
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    steps: list[StepRecord] = field(default_factory=list)
    attempt: int = 0
    history: list[HistoryEntry] = field(default_factory=list)

    def step(self, step_id: str) -> StepRecord:
        """The step recorded under `step_id` (as the user wrote it)."""
        for item in self.steps:
            if item.id == step_id:
                return item
        raise KeyError(f"run {self.id} has no step {step_id!r}")

    def last_error(self) -> dict[str, Any] | None:
        """The error of the latest failed attempt (of a step or of the code outside steps),
        or None: what a run that has not ended yet is retrying after."""
        found = [(s.ended_at or s.started_at or 0.0, s.error) for s in self.steps if s.error]
        found += [
            (entry.at, entry.data["error"])
            for entry in self.history
            if entry.kind == "retrying" and isinstance(entry.data.get("error"), dict)
        ]
        return max(found, key=lambda item: item[0])[1] if found else None
