"""Row mapping: records from the rows the named queries return, and a step's columns."""

from __future__ import annotations

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
        id=row["id"],
        function_id=row["function_id"],
        status=RunStatus(row["status"]),
        attempt=row["attempt"],
        event_ids=from_json(row["event_ids"]),
        output=from_json(row["output"]),
        error=from_json(row["error"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        steps=steps or [],
    )


def step_from_row(row: Any) -> StepRecord:
    return StepRecord(
        id=row["id"],
        hashed_id=row["hashed_id"],
        status=StepStatus(row["status"]),
        attempts=row["attempts"],
        output=from_json(row["output"]),
        error=from_json(row["error"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        kind=row["kind"],
        wake_at=row["wake_at"],
        detail=from_json(row["detail"]),
        occurrence=row["occurrence"],
    )


def event_from_row(row: Any) -> StoredEvent:
    event = Event(
        name=row["name"],
        data=from_json(row["data"]),
        id=row["id"],
        ts=row["ts"],
        user=from_json(row["user_data"]),
        v=row["v"],
        meta=from_json(row["meta"]),
        trace=row["trace"],
        tracestate=row["tracestate"],
    )
    return StoredEvent(event, row["received_at"], [])


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
            HistoryEntry(row["at"], row["kind"], from_json(row["data"]) or {})
            for row in tx("run_history", run_id=run_id).fetchall()
        ]
        run = Run(**{**run.__dict__, "history": history})
    return run


def read_event(tx: Tx, event_id: str, *, with_runs: bool = False) -> StoredEvent | None:
    row = tx("get_event", id=event_id).fetchone()
    if row is None:
        return None
    found = event_from_row(row)
    if with_runs:
        run_ids = [r["run_id"] for r in tx("event_runs", event_id=event_id).fetchall()]
        found = StoredEvent(found.event, found.received_at, run_ids)
    return found


def wait_from_row(row: Any) -> Wait:
    """A wait from a row of its columns (run_id, hashed_id, event, condition,
    trigger_event, expires_at, kind)."""
    return Wait(
        row["run_id"],
        row["hashed_id"],
        row["event"],
        row["condition"],
        from_json(row["trigger_event"]),
        row["expires_at"],
        kind=WaitKind(row["kind"]),
    )
