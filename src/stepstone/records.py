"""Records: the frozen values stepstone hands out and stores."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


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
    CANCELLED = "cancelled"  # left open (a sleep, a wait, an invoke, a retry) when its run ended

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
    meta: dict[str, Any] | None = None  # what the npm SDK sends beside an event (sessions)
    # the W3C traceparent of the span that sent it (tracing.py), and the tracestate of its
    # trace: kept with the event, not part of what functions see (to_dict)
    trace: str | None = None
    tracestate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "data": self.data, "id": self.id, "ts": self.ts}
        if self.user is not None:
            out["user"] = self.user
        if self.v is not None:
            out["v"] = self.v
        if self.meta is not None:
            out["meta"] = self.meta
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
            meta=raw.get("meta"),
        )


@dataclass(frozen=True, init=False)
class StepRecord:
    """A step of a run. `id` is the id the function gave, as written; a step id used again
    in the same run (a step in a loop) is recorded under the same `id`, with `occurrence`
    counting its uses (0, 1, 2, ...) and `hashed_id` the SHA-1 of `id`, `id:1`, `id:2`, ..."""

    id: str
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
    occurrence: int = 0

    def __init__(
        self,
        id: str,
        hashed_id: str,
        status: StepStatus,
        attempts: int = 0,
        output: Any = None,
        error: dict[str, Any] | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        kind: str = "run",
        wake_at: float | None = None,
        detail: dict[str, Any] | None = None,
        occurrence: int = 0,
    ) -> None:
        # every step makes one or two: one dict update, where the generated __init__ of a
        # frozen dataclass calls object.__setattr__ per field (a twentieth of a step's
        # cost); test_pure_parts checks it against the fields
        self.__dict__.update(
            id=id,
            hashed_id=hashed_id,
            status=status,
            attempts=attempts,
            output=output,
            error=error,
            started_at=started_at,
            ended_at=ended_at,
            kind=kind,
            wake_at=wake_at,
            detail=detail,
            occurrence=occurrence,
        )

    @property
    def label(self) -> str:
        """The id as shown to people: `repeat`, then `repeat #2`, `repeat #3`, ..."""
        return step_label(self.id, self.occurrence)


def step_label(step_id: str, occurrence: int) -> str:
    return step_id if occurrence == 0 else f"{step_id} #{occurrence + 1}"


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

    def step(self, step_id: str, occurrence: int = 0) -> StepRecord:
        """The step recorded under `step_id` (as the user wrote it); `occurrence` picks one
        use of an id the function used more than once (0: the first)."""
        for item in self.steps:
            if item.id == step_id and item.occurrence == occurrence:
                return item
        raise KeyError(f"run {self.id} has no step {step_label(step_id, occurrence)!r}")

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


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing: iterate over it, take its len(), index it; pass `next_cursor`
    back as `cursor=` for the next page (None: this is the last one)."""

    items: list[T]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.items[index]
