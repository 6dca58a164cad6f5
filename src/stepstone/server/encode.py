"""Records as the JSON the API answers with. Times are seconds since the epoch."""

from __future__ import annotations

from typing import Any

from ..records import Event, HistoryEntry, Run, StepRecord
from ..store import StoredEvent


def run_summary(run: Run) -> dict[str, Any]:
    """A run without its output, steps and history (what lists show)."""
    return {
        "id": run.id,
        "function_id": run.function_id,
        "status": run.status.value,
        "attempt": run.attempt,
        "event_ids": list(run.event_ids),
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
    }


def run_detail(run: Run, events: list[StoredEvent]) -> dict[str, Any]:
    return {
        **run_summary(run),
        "output": run.output,
        "steps": [step(s) for s in run.steps],
        "history": [history(h) for h in run.history],
        "events": [stored_event(e) for e in events],
    }


def step(record: StepRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "occurrence": record.occurrence,
        "hashed_id": record.hashed_id,
        "kind": record.kind,
        "status": record.status.value,
        "attempts": record.attempts,
        "output": record.output,
        "error": record.error,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "wake_at": record.wake_at,
        "detail": record.detail,
    }


def history(entry: HistoryEntry) -> dict[str, Any]:
    return {"at": entry.at, "kind": entry.kind, "data": entry.data}


def event(value: Event) -> dict[str, Any]:
    return {
        "id": value.id,
        "name": value.name,
        "data": value.data,
        "ts": value.ts,
        "user": value.user,
        "v": value.v,
    }


def stored_event(found: StoredEvent) -> dict[str, Any]:
    return {**event(found.event), "received_at": found.received_at, "run_ids": found.run_ids}
