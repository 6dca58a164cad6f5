"""Records as the API's models (models.py). Times are seconds since the epoch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from starlette.responses import JSONResponse

from ..records import Run, StepRecord
from ..store import StoredEvent
from . import models


def respond(body: models.Model, *, leave_out_unset: bool = False) -> JSONResponse:
    """The model as a JSON answer. `leave_out_unset`: fields never given are not sent
    (a function's options it does not set)."""
    return JSONResponse(body.model_dump(mode="json", by_alias=True, exclude_unset=leave_out_unset))


def run_summary(run: Run, names: Mapping[str, str]) -> models.RunSummary:
    """A run without its output, steps and history (what lists show); `names`: event
    names by event id, for the trigger event's name."""
    return models.RunSummary(
        id=run.id,
        function_id=run.function_id,
        status=run.status,
        attempt=run.attempt,
        event_ids=list(run.event_ids),
        event_name=names.get(run.event_ids[0]) if run.event_ids else None,
        error=_error(run.error),
        created_at=run.created_at,
        started_at=run.started_at,
        ended_at=run.ended_at,
    )


def rerun_of(run: Run) -> str | None:
    """The run that `run` is a rerun of, as its history says."""
    for entry in run.history:
        if entry.kind == "rerun" and isinstance(entry.data.get("of"), str):
            return str(entry.data["of"])
    return None


def run_detail(run: Run, events: list[StoredEvent], reruns: list[str]) -> models.Run:
    names = {e.event.id or "": e.event.name for e in events}
    origin = rerun_of(run)
    return models.Run(
        **run_summary(run, names).model_dump(),
        output=run.output,
        steps=[step(s, run, origin) for s in run.steps],
        history=[models.HistoryEntry(at=h.at, kind=h.kind, data=h.data or {}) for h in run.history],
        events=[stored_event(e) for e in events],
        rerun_of=origin,
        reruns=reruns,
    )


def step(record: StepRecord, run: Run, origin: str | None) -> models.Step:
    # a rerun from a step starts with the steps it kept, which keep their first run's
    # times: they are the only steps that started before the run was created
    kept = origin is not None and (record.started_at or run.created_at) < run.created_at
    return models.Step(
        id=record.id,
        occurrence=record.occurrence,
        hashed_id=record.hashed_id,
        kind=cast(models.StepKind, record.kind),  # the store writes only these kinds
        status=record.status,
        attempts=record.attempts,
        output=record.output,
        error=_error(record.error),
        started_at=record.started_at,
        ended_at=record.ended_at,
        wake_at=record.wake_at,
        detail=record.detail,
        kept_from=origin if kept else None,
    )


def stored_event(found: StoredEvent) -> models.Event:
    value = found.event
    return models.Event(
        id=value.id or "",
        name=value.name,
        data=value.data,
        ts=value.ts or 0,
        user=value.user,
        v=value.v,
        meta=value.meta,
        received_at=found.received_at,
        run_ids=found.run_ids,
    )


def _error(error: dict[str, Any] | None) -> models.ErrorInfo | None:
    if error is None:
        return None
    return models.ErrorInfo(
        name=str(error.get("name", "Error")),
        message=str(error.get("message", "")),
        stack=str(error.get("stack") or ""),
    )
