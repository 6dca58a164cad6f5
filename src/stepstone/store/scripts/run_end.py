"""The script of a run's end under its lease."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...records import HistoryEntry, RunStatus
from ..base import (
    IntakeReport,
    Lease,
    NewEvent,
)
from ..tx import (
    Deferred,
    Tx,
    insert_history,
    lease_lost,
    to_json,
)
from . import flow
from .endings import finish_run, resume_parent
from .intake import ingest


class RunEnd:
    """The script of a run's end. One with no flow control to release and no runs to
    start is `mergeable`: a dialect may end several in one set of statements
    (merges.merge_run_ends)."""

    __slots__ = ("at", "error", "follow_up", "history", "lease", "output_json", "report", "status")

    def __init__(
        self,
        lease: Lease,
        status: RunStatus,
        output_json: str | None,
        error: dict[str, Any] | None,
        at: float,
        follow_up: Sequence[NewEvent],
        history: Sequence[HistoryEntry],
    ) -> None:
        self.lease, self.status, self.output_json, self.error = lease, status, output_json, error
        self.at, self.follow_up, self.history = at, follow_up, history
        self.report = IntakeReport()  # what its announcements did (filled as it runs)

    @property
    def mergeable(self) -> bool:
        lease = self.lease
        return not lease.keys and not lease.holds and not any(e.runs for e in self.follow_up)

    def history_rows(self) -> list[list[Any]]:
        """Its history entries as insert_history_rows takes them: the log lines, then the
        end itself (as `finish_run` writes it)."""
        run_id = self.lease.run_id
        rows = [[run_id, h.at, h.kind, to_json(h.data or None)] for h in self.history]
        ended = {"error": self.error} if self.error else None
        rows.append([run_id, self.at, self.status.value, to_json(ended)])
        return rows

    def run_row(self) -> list[Any]:
        """id, status, output, error, ended_at: the columns finish_runs sets."""
        return [
            self.lease.run_id,
            self.status.value,
            self.output_json,
            to_json(self.error),
            self.at,
        ]

    def __call__(self, tx: Tx) -> Deferred[None]:
        lease = self.lease
        # the job goes first, and only with our fencing token (its row lock taken before
        # the run's, in the order a claim takes them); whether it went is looked at
        # last: if not, the lease was lost, and the whole script is rolled back
        ended = tx("end_job", run_id=lease.run_id, fence=lease.fence)
        for entry in self.history:
            insert_history(tx, lease.run_id, entry)
        parent = finish_run(tx, lease.run_id, self.status, self.output_json, self.error, self.at)
        flow.free_slots(tx, lease.keys, self.at)
        if lease.holds:
            tx("flow_release", run_id=lease.run_id, prefix="s:")
        self.report.clear()
        ingest(tx, self.follow_up, self.report)

        def check() -> None:
            if ended.rowcount == 0:
                lease_lost(lease)
            self.resume_parent(tx, parent.fetchone())

        return Deferred(check)

    def resume_parent(self, tx: Tx, row: Any) -> None:
        """The invoking step of this run's parent gets its outcome (`row`: run_parent's)."""
        resume_parent(
            tx, self.lease.run_id, row, self.status, self.output_json, self.error, self.at
        )
