"""A run's checkpoints under its lease: a step saved, alone or with the events it stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...records import StepRecord
from ..base import (
    IntakeReport,
    Lease,
    NewEvent,
)
from ..rows import (
    step_columns,
)
from ..tx import (
    Deferred,
    Tx,
    lease_lost,
)
from .intake import ingest


class StepSave:
    """The script of a step's checkpoint with nothing else in its transaction: a dialect
    may write several of them in one statement (`step_row` gives each one's columns)."""

    __slots__ = ("lease", "output_json", "step")

    def __init__(self, lease: Lease, step: StepRecord, output_json: str | None) -> None:
        self.lease, self.step, self.output_json = lease, step, output_json

    def __call__(self, tx: Tx) -> Deferred[None]:
        return save_step_fenced(tx, self.lease, self.step, self.output_json)

    def step_row(self) -> list[Any]:
        """run_id, fence, then the columns save_step_fenced takes after the run id."""
        columns = step_columns(self.step, self.output_json)
        return [self.lease.run_id, self.lease.fence, *columns.values()]


class SaveWithEvents:
    """A step's checkpoint and the events it stores (a step's send_event, the start of an
    invoked run), in one transaction."""

    __slots__ = ("events", "lease", "output_json", "report", "step")

    def __init__(
        self,
        lease: Lease,
        step: StepRecord,
        output_json: str | None,
        events: Sequence[NewEvent],
    ) -> None:
        self.lease, self.step, self.output_json, self.events = lease, step, output_json, events
        self.report = IntakeReport()

    def __call__(self, tx: Tx) -> Deferred[None]:
        written = save_step_fenced(tx, self.lease, self.step, self.output_json)
        self.report.clear()
        ingest(tx, self.events, self.report)
        return written


def save_step_fenced(
    tx: Tx, lease: Lease, step: StepRecord, output_json: str | None
) -> Deferred[None]:
    """Writes the step if the lease is still ours; the returned check raises if it was not."""
    cursor = tx(
        "save_step_fenced",
        run_id=lease.run_id,
        fence=lease.fence,
        **step_columns(step, output_json),
    )

    def check() -> None:
        if cursor.rowcount == 0:
            lease_lost(lease)

    return Deferred(check)
