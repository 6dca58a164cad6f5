"""How a run ends: its row and history, its parent's invoking step resumed; and a cancel
(at once when no worker holds the run, else asked of the holder)."""

from __future__ import annotations

from typing import Any

from ...errors import error_record
from ...records import HistoryEntry, RunStatus, StepStatus
from ..base import IntakeReport
from ..tx import (
    Cursor,
    Tx,
    insert_history,
    to_json,
)


def finish_run(
    tx: Tx,
    run_id: str,
    status: RunStatus,
    output_json: str | None,
    error: dict[str, Any] | None,
    at: float,
) -> Cursor:
    """Ends a run whose job is gone; returns the cursor of its parent's (run id, step),
    read by the caller with resume_parent."""
    parent = tx(
        "finish_run",
        status=status.value,
        output=output_json,
        error=to_json(error),
        ended_at=at,
        id=run_id,
    )
    tx("delete_run_waits", run_id=run_id)
    # a sleep, wait or retry in progress ends with the run
    tx("close_open_steps", ended_at=at, run_id=run_id)
    data = {"error": error} if error else {}
    insert_history(tx, run_id, HistoryEntry(at, status.value, data))
    return parent


def resume_parent(
    tx: Tx,
    run_id: str,
    row: Any,
    status: RunStatus,
    output_json: str | None,
    error: dict[str, Any] | None,
    at: float,
) -> None:
    """The invoking step of an ended run's parent (`row`: one with its parent_run_id and
    parent_step, as run_parent, finish_run and finish_runs read them) gets its outcome."""
    if row is None or row["parent_run_id"] is None:
        return
    parent_id, parent_step = row["parent_run_id"], row["parent_step"]
    if status is RunStatus.COMPLETED:
        new_status, out, err = StepStatus.COMPLETED, output_json, None
    else:
        new_status, out = StepStatus.FAILED, None
        err = error or error_record(
            "InvokedRunEnded", f"the invoked run {run_id} ended {status.value}"
        )
    resolved = tx(
        "resolve_step",
        status=new_status.value,
        output=out,
        error=to_json(err),
        ended_at=at,
        run_id=parent_id,
        hashed_id=parent_step,
        from_status=StepStatus.INVOKING.value,
    ).rowcount
    if resolved:
        tx("nudge", now=at, run_id=parent_id)


def cancel_run(tx: Tx, run_id: str, now: float, report: IntakeReport) -> None:
    """Cancel a run no worker holds now; flag one a worker holds (it stops the run). The
    report names the run in `cancelled` (a worker of the process that settles the report
    stops it at once) and, when it ended here, in `ended` too: no worker will end it, so
    that process announces its end. A run that had ended already is in neither."""
    row = tx("job_owner", run_id=run_id).fetchone()
    if row is not None and row["owner"] is not None:
        # a worker holds it: it stops the run once the steps in flight are saved
        if tx("flag_cancel", run_id=run_id).rowcount > 0:
            report.cancelled.append(run_id)
        return
    if tx("cancel_run_now", ended_at=now, id=run_id).rowcount == 0:
        return
    tx("delete_job", run_id=run_id)
    tx("delete_run_waits", run_id=run_id)
    tx("close_open_steps", ended_at=now, run_id=run_id)
    tx("flow_release", run_id=run_id, prefix="s:")
    insert_history(tx, run_id, HistoryEntry(now, "cancelled"))
    parent = tx("run_parent", id=run_id).fetchone()
    resume_parent(tx, run_id, parent, RunStatus.CANCELLED, None, None, now)
    report.cancelled.append(run_id)
    report.ended.append(run_id)
