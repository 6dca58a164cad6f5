"""Row mapping: records from the rows the named queries return, and a step's columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..records import Event, HistoryEntry, Run, RunStatus, StepRecord, StepStatus
from .base import (
    StoredEvent,
    Wait,
    WaitKind,
)
from .tx import Tx, from_json, to_json


def run_from_row(row: Any, steps: list[StepRecord] | None = None) -> Run:
    return Run(
        id=row[0],
        function_id=row[1],
        status=RunStatus(row[2]),
        attempt=row[3],
        event_ids=from_json(row[4]),
        output=from_json(row[5]),
        error=from_json(row[6]),
        created_at=row[7],
        started_at=row[8],
        ended_at=row[9],
        steps=steps or [],
    )


def step_from_row(row: Any) -> StepRecord:
    return StepRecord(
        id=row[0],
        hashed_id=row[1],
        status=StepStatus(row[2]),
        attempts=row[3],
        output=from_json(row[4]),
        error=from_json(row[5]),
        started_at=row[6],
        ended_at=row[7],
        kind=row[8],
        wake_at=row[9],
        detail=from_json(row[10]),
        occurrence=row[11],
    )


def event_from_row(row: Any) -> StoredEvent:
    event = Event(
        name=row[1], data=from_json(row[2]), id=row[0], ts=row[3], user=from_json(row[4]), v=row[5]
    )
    return StoredEvent(event, row[6], [])


def step_columns(step: StepRecord, output_json: str | None) -> dict[str, Any]:
    """A step's columns but its run id, as upsert_step and save_step_fenced take them, in
    the order save_steps_fenced reads them from a JSON row."""
    if output_json is None and step.output is not None:
        output_json = to_json(step.output)
    return {
        "hashed_id": step.hashed_id,
        "id": step.id,
        "kind": step.kind,
        "status": step.status.value,
        "attempts": step.attempts,
        "output": output_json,
        "error": to_json(step.error),
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "wake_at": step.wake_at,
        "detail": to_json(step.detail),
        "occurrence": step.occurrence,
    }


def upsert_step(tx: Tx, run_id: str, step: StepRecord, output_json: str | None) -> None:
    tx("upsert_step", run_id=run_id, **step_columns(step, output_json))


def read_run(
    tx: Tx, run_id: str, *, with_steps: bool = False, with_history: bool = False
) -> Run | None:
    row = tx("get_run", id=run_id).fetchone()
    if row is None:
        return None
    steps = (
        [step_from_row(r) for r in tx("run_steps", run_id=run_id).fetchall()] if with_steps else []
    )
    run = run_from_row(row, steps)
    if with_history:
        history = [
            HistoryEntry(at, kind, from_json(data) or {})
            for at, kind, data in tx("run_history", run_id=run_id).fetchall()
        ]
        run = Run(**{**run.__dict__, "history": history})
    return run


def read_event(tx: Tx, event_id: str, *, with_runs: bool = False) -> StoredEvent | None:
    row = tx("get_event", id=event_id).fetchone()
    if row is None:
        return None
    found = event_from_row(row)
    if with_runs:
        run_ids = [r[0] for r in tx("event_runs", event_id=event_id).fetchall()]
        found = StoredEvent(found.event, found.received_at, run_ids)
    return found


def wait_from_row(row: Sequence[Any], name: str) -> Wait:
    """A wait from (run_id, hashed_id, condition, trigger_event, expires_at, kind)."""
    run_id, hashed_id, condition, trigger_event, expires_at, kind = row
    return Wait(
        run_id,
        hashed_id,
        name,
        condition,
        from_json(trigger_event),
        expires_at,
        kind=WaitKind(kind),
    )
