"""Store logic shared by SQLite and PostgreSQL: each operation is one transaction script
(in `scripts/`); the dialect decides on which thread and connection it runs (SQLite: a
single writer thread that group-commits; PostgreSQL: a pool of connections), so the logic
is written once for both databases."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..records import HistoryEntry, Page, Run, RunStatus, StepRecord
from . import migrations, run_search
from .base import (
    Claim,
    Handoff,
    IntakeReport,
    Lease,
    NewEvent,
    NewRun,
    Pruned,
    RunPage,
    Store,
    StoredEvent,
    SyncedAppRecord,
    Wait,
)
from .rows import event_from_row, read_event, read_run, run_from_row, step_from_row, upsert_step
from .scripts import flow
from .scripts.checkpoints import SaveWithEvents, StepSave, save_step_fenced
from .scripts.claim import ClaimScript, claim_runs
from .scripts.endings import cancel_run
from .scripts.intake import ingest, insert_run, insert_wait
from .scripts.registry import check_app_id, replace_functions
from .scripts.run_end import RunEnd
from .tx import Deferred, Many, Tx, check_fence, from_json, insert_history, to_json

T = TypeVar("T")

# A send to a store whose writes have been quiet this long commits inline (on the event
# loop's thread, as a lone run's checkpoints do): the process is idle enough that the
# loop's wait for one commit holds nothing up, and there is no other write to group-commit
# with. A busier process writes more often than this, and its sends queue as before; so
# does a send of many events, whose commit would hold the loop for longer, and which the
# hop to the writer costs little next to its own statements.
QUIET_AFTER = 0.005
QUIET_MAX_EVENTS = 16


class SqlStore(Store, abc.ABC):
    """All domain operations as transaction scripts; subclasses provide `_write`/`_read`."""

    dialect: str  # the folder of its SQL files: "sqlite" or "postgres"
    # time.monotonic() when a write last began or ended (set by the dialect): see _quiet
    _last_write_at = 0.0
    # an event-name pattern as the dialect's list_runs query matches it
    name_pattern: Callable[[str], str] = staticmethod(run_search.glob_pattern)
    # the claim's script: the dialect's (PostgreSQL's saves round trips)
    claim_script: Callable[..., list[Claim]] = staticmethod(claim_runs)

    @abc.abstractmethod
    async def _write(self, script: Callable[[Tx], T]) -> T: ...

    @abc.abstractmethod
    async def _read(self, script: Callable[[Tx], T]) -> T: ...

    async def _write_apart(self, script: Callable[[Tx], T]) -> T:
        """A write that should not share a transaction with other callers' writes (a
        prune's batch): a dialect with connections to spare runs it on one of its own, so
        that no checkpoint's commit waits for its statements; by default (one writer, as
        SQLite has) the same as `_write`."""
        return await self._write(script)

    async def _write_inline(self, script: Callable[[Tx], T]) -> T:
        """A write for a caller that runs alone; by default the same as `_write`."""
        return await self._write(script)

    def _quiet(self) -> bool:
        """No write for QUIET_AFTER seconds: a write may as well commit inline."""
        return time.monotonic() - self._last_write_at >= QUIET_AFTER

    async def _write_statement(self, script: Callable[[Tx], T], *, inline: bool = False) -> T:
        """A write of a single statement, atomic by itself: a dialect may run it without a
        transaction around it (and so without the BEGIN and COMMIT round trips). It may
        run twice if the connection is lost before its answer; it must be idempotent."""
        return await (self._write_inline(script) if inline else self._write(script))

    async def pending_migrations(self) -> list[int]:
        rows = await self._read(lambda tx: tx("applied_migrations").fetchall())
        return [version for version, _, _ in migrations.pending(self.dialect, (r[0] for r in rows))]

    # -- intake ------------------------------------------------------------------------
    async def ingest(
        self, events: Sequence[NewEvent], *, handoff: Handoff | None = None
    ) -> IntakeReport:
        report = IntakeReport()

        def script(tx: Tx) -> IntakeReport:
            if handoff is not None:
                handoff.claims = []  # a script run again (a batch rerun) starts over
            report.clear()
            ingest(tx, events, report, want_new=True, handoff=handoff)
            return report

        quiet = len(events) <= QUIET_MAX_EVENTS and self._quiet()
        if (handoff is not None and handoff.idle and handoff.takes_any(events)) or quiet:
            # the sender's worker is idle and takes the run, or the process writes nothing
            # else: nothing waits for the loop, and nothing may group-commit with it but
            # another send
            return await self._write_inline(script)
        return await self._write(script)

    async def create_runs(
        self, runs: Sequence[NewRun], steps: Sequence[tuple[str, StepRecord]] = ()
    ) -> IntakeReport:
        report = IntakeReport()

        def script(tx: Tx) -> IntakeReport:
            report.clear()
            for run in runs:
                insert_run(tx, run, report)
            for run_id, step in steps:
                upsert_step(tx, run_id, step, None)
            return report

        return await self._write(script)

    # -- the function registry ------------------------------------------------------------
    async def register_functions(
        self, app_id: str, configs: Sequence[dict[str, Any]], now: float
    ) -> None:
        await self._write(lambda tx: replace_functions(tx, app_id, configs, now, synced=False))

    async def registered_functions(self) -> list[dict[str, Any]]:
        return await self._read(
            lambda tx: [from_json(row["config"]) for row in tx("list_functions").fetchall()]
        )

    async def save_app(
        self, app: SyncedAppRecord, configs: Sequence[dict[str, Any]] | None
    ) -> None:
        def script(tx: Tx) -> None:
            row = {
                "id": app.id,
                "url": app.url,
                "sdk": app.sdk,
                "framework": app.framework,
                "app_version": app.app_version,
                "synced_at": app.synced_at,
                "error": app.error,
            }
            check_app_id(tx, app.id, synced=True)
            if configs is None:  # a failed sync: its functions stay as they were
                tx("app_sync_failed", **row)
                return
            tx("upsert_app", **row)
            replace_functions(tx, app.id, configs, app.synced_at, synced=True)

        await self._write(script)

    async def list_apps(self) -> list[SyncedAppRecord]:
        rows = await self._read(lambda tx: tx("list_apps").fetchall())
        return [
            SyncedAppRecord(
                id=row["id"],
                url=row["url"],
                sdk=row["sdk"],
                framework=row["framework"],
                app_version=row["app_version"],
                synced_at=row["synced_at"],
                error=row["error"],
            )
            for row in rows
        ]

    # -- the queue -----------------------------------------------------------------------
    async def claim(
        self,
        owner: str,
        limit: int,
        now: float,
        lease_for: float,
        *,
        starts: int | None = None,
        ahead: float = 0.0,
        inline: bool = False,
    ) -> list[Claim]:
        new_limit = limit if starts is None else max(0, min(starts, limit))

        def script(tx: Tx) -> list[Claim]:
            return self.claim_script(tx, owner, limit, new_limit, now, lease_for, ahead)

        claim = ClaimScript(script)
        return await (self._write_inline(claim) if inline else self._write(claim))

    async def renew(self, leases: Sequence[Lease], until: float) -> tuple[list[str], list[str]]:
        def script(tx: Tx) -> tuple[list[str], list[str]]:
            rows = to_json([[lease.run_id, lease.fence] for lease in leases])
            renewed = {
                row["run_id"]: row["cancel"]
                for row in tx("renew_many", until=until, leases=rows).fetchall()
            }
            missed = [lease for lease in leases if lease.run_id not in renewed]
            held: set[str] = set()
            if missed:  # lost, or held by another transaction (renewed next time)
                rows = to_json([[lease.run_id, lease.fence] for lease in missed])
                held = {row["run_id"] for row in tx("leases_held", leases=rows).fetchall()}
            lost = [lease.run_id for lease in missed if lease.run_id not in held]
            return lost, [run_id for run_id, cancel in renewed.items() if cancel]

        return await self._write(script)

    async def release(
        self, leases: Sequence[tuple[Lease, float]], now: float, owner: str
    ) -> list[str]:
        if not leases:
            return []

        def script(tx: Tx) -> list[str]:
            rows = to_json([[lease.run_id, lease.fence, at] for lease, at in leases])
            released = [
                row["run_id"] for row in tx("release_leases", woken_at=now, rows=rows).fetchall()
            ]
            entry = HistoryEntry(now, "released", {"worker": owner})
            for run_id in released:
                insert_history(tx, run_id, entry)
            return released

        return await self._write(script)

    async def prune(self, before: float, *, limit: int) -> Pruned:
        def script(tx: Tx) -> Pruned:
            began = time.perf_counter()
            picked = tx("prune_pick_runs", before=before, limit=limit).fetchall()
            ids = Many(row["id"] for row in picked)
            if ids:
                for query in ("prune_steps", "prune_history", "prune_waits", "prune_flow_keys"):
                    tx(query, ids=ids)
                tx("prune_run_links", ids=ids).fetchall()
                tx("prune_runs", ids=ids)
            events = tx("prune_events", before=before, limit=limit).fetchall()
            return Pruned(len(ids), len(events), time.perf_counter() - began)

        return await self._write_apart(script)

    async def backlog(self, now: float) -> tuple[int, float | None]:
        row = await self._read(lambda tx: tx("backlog", now=now).fetchone())
        return int(row["due"]), None if row["oldest"] is None else float(row["oldest"])

    async def next_due(self) -> float | None:
        def script(tx: Tx) -> float | None:
            row = tx("next_due").fetchone()
            return None if row is None or row["due"] is None else float(row["due"])

        return await self._read(script)

    # -- checkpoints ----------------------------------------------------------------------
    async def save_step(
        self,
        lease: Lease,
        step: StepRecord,
        output_json: str | None,
        history: Sequence[HistoryEntry] = (),
        *,
        inline: bool = False,
    ) -> None:
        def script(tx: Tx) -> Deferred[None]:
            written = save_step_fenced(tx, lease, step, output_json)
            for entry in history:
                insert_history(tx, lease.run_id, entry)
            return written

        if not history:  # one statement: atomic without a transaction of its own
            await self._write_statement(StepSave(lease, step, output_json), inline=inline)
        else:
            await (self._write_inline(script) if inline else self._write(script))

    async def save_step_with_events(
        self, lease: Lease, step: StepRecord, output_json: str, events: Sequence[NewEvent]
    ) -> IntakeReport:
        script = SaveWithEvents(lease, step, output_json, events)
        await self._write(script)
        return script.report

    async def register_wait(self, lease: Lease, step: StepRecord, wait: Wait) -> None:
        def script(tx: Tx) -> Deferred[None]:
            written = save_step_fenced(tx, lease, step, None)
            insert_wait(tx, wait)
            return written

        await self._write(script)

    async def start_invoke(
        self, lease: Lease, step: StepRecord, child_event: NewEvent
    ) -> IntakeReport:
        script = SaveWithEvents(lease, step, None, [child_event])
        await self._write(script)
        return script.report

    async def expire_step(self, lease: Lease, step: StepRecord) -> StepRecord:
        def script(tx: Tx) -> StepRecord:
            check_fence(tx, lease)
            tx(
                "expire_step",
                status=step.status.value,
                output=to_json(step.output),
                error=to_json(step.error),
                ended_at=step.ended_at,
                run_id=lease.run_id,
                hashed_id=step.hashed_id,
            )
            tx("delete_wait", run_id=lease.run_id, hashed_id=step.hashed_id)
            row = tx("get_step", run_id=lease.run_id, hashed_id=step.hashed_id).fetchone()
            return step_from_row(row)

        return await self._write(script)

    async def reschedule(
        self,
        lease: Lease,
        *,
        at: float,
        now: float,
        status: RunStatus,
        attempt: int | None = None,
        history: Sequence[HistoryEntry] = (),
    ) -> None:
        def script(tx: Tx) -> None:
            check_fence(tx, lease)
            tx("release", woken_at=min(now, at), available_at=at, run_id=lease.run_id)
            flow.free_slots(tx, lease.keys, now)
            tx("set_run_status", status=status.value, attempt=attempt, id=lease.run_id)
            for entry in history:
                insert_history(tx, lease.run_id, entry)

        await self._write(script)

    async def finish(
        self,
        lease: Lease,
        *,
        status: RunStatus,
        output_json: str | None,
        error: dict[str, Any] | None,
        at: float,
        follow_up: Sequence[NewEvent] = (),
        history: Sequence[HistoryEntry] = (),
    ) -> IntakeReport:
        end = RunEnd(lease, status, output_json, error, at, follow_up, history)
        await self._write(end)
        return end.report

    async def request_cancel(self, run_id: str, now: float) -> IntakeReport:
        def script(tx: Tx) -> IntakeReport:
            report = IntakeReport()  # afresh if the script runs again
            cancel_run(tx, run_id, now, report)
            return report

        return await self._write(script)

    async def add_history(self, run_id: str, entry: HistoryEntry) -> None:
        await self._write(lambda tx: insert_history(tx, run_id, entry))

    # -- reads ---------------------------------------------------------------------------
    async def get_run(self, run_id: str, *, with_history: bool = False) -> Run | None:
        return await self._read(
            lambda tx: read_run(tx, run_id, with_steps=True, with_history=with_history)
        )

    async def list_runs(
        self,
        *,
        function_id: str | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        event_name: str | None = None,
        event_filter: run_search.EventFilter | None = None,
    ) -> RunPage:
        status_text = None if status is None else RunStatus(status).value
        pattern = None if event_name is None else self.name_pattern(event_name)

        def page(tx: Tx, after: str | None, size: int) -> list[Run]:
            rows = tx(
                "list_runs",
                function_id=function_id,
                status=status_text,
                cursor=after,
                created_after=created_after,
                created_before=created_before,
                event_name=pattern,
                limit=size,
            ).fetchall()
            return [run_from_row(row) for row in rows]

        def script(tx: Tx) -> RunPage:
            if event_filter is None:
                runs = page(tx, cursor, limit + 1)
                more = len(runs) > limit
                runs = runs[:limit]
                return RunPage(runs, runs[-1].id if more and runs else None)
            # the filter needs each run's trigger event: scan in pages, up to SCAN_MAX
            found: list[Run] = []
            after, scanned = cursor, 0
            while scanned < run_search.SCAN_MAX:
                batch = page(tx, after, run_search.SCAN_PAGE)
                scanned += len(batch)
                ids = Many(run.id for run in batch)
                rows = tx("get_run_events", ids=ids).fetchall()
                events = {row["id"]: event_from_row(row).event for row in rows}
                for run in run_search.keep(batch, events, event_filter):
                    found.append(run)
                    if len(found) == limit:
                        return RunPage(found, run.id)
                if len(batch) < run_search.SCAN_PAGE:
                    return RunPage(found, None)
                after = batch[-1].id
            return RunPage(found, after)  # scanned SCAN_MAX runs: the caller may go on

        return await self._read(script)

    async def run_events(self, run_ids: Sequence[str]) -> list[StoredEvent]:
        def script(tx: Tx) -> list[StoredEvent]:
            rows = tx("get_run_events", ids=Many(run_ids)).fetchall()
            return [event_from_row(row) for row in rows]

        return await self._read(script) if run_ids else []

    async def reruns_of(self, run_id: str) -> list[str]:
        return await self._read(
            lambda tx: [row["run_id"] for row in tx("reruns_of", run_id=run_id).fetchall()]
        )

    async def runs_for_event(self, event_id: str) -> list[Run]:
        return await self._read(
            lambda tx: [
                run_from_row(row) for row in tx("runs_for_event", event_id=event_id).fetchall()
            ]
        )

    async def get_event(self, event_id: str) -> StoredEvent | None:
        return await self._read(lambda tx: read_event(tx, event_id, with_runs=True))

    async def list_events(
        self, *, name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[StoredEvent]:
        def script(tx: Tx) -> Page[StoredEvent]:
            before = None
            if cursor is not None:
                found = read_event(tx, cursor)
                before = found.received_at if found else None
            # (received_at, id) orders events: a batch shares one received_at
            # one row more than asked tells whether another page follows
            rows = tx(
                "list_events", name=name, before=before, cursor=cursor, limit=limit + 1
            ).fetchall()
            out = []
            for row in rows[:limit]:
                event = event_from_row(row)
                linked = tx("event_runs", event_id=event.event.id).fetchall()
                run_ids = [r["run_id"] for r in linked]
                out.append(StoredEvent(event.event, event.received_at, run_ids))
            more = len(rows) > limit and bool(out)
            return Page(out, out[-1].event.id if more else None)

        return await self._read(script)
