"""Intake: events stored with the runs they start (flow control applied), the waits they
resume and the runs their cancel rules cancel. Every path that stores events goes
through `ingest`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ...records import Event, HistoryEntry, Run, RunStatus, StepStatus
from ...waitkeys import key_at
from ..base import (
    NO_FLOW,
    Claim,
    Handoff,
    IntakeReport,
    Lease,
    NewEvent,
    NewRun,
    Wait,
    WaitKind,
)
from ..matching import WaitMatcher
from ..rows import (
    wait_from_row,
)
from ..tx import (
    Cursor,
    Many,
    Tx,
    insert_history,
    to_json,
)
from . import flow
from .endings import cancel_run

match_wait = WaitMatcher()


def ingest(
    tx: Tx,
    events: Sequence[NewEvent],
    report: IntakeReport,
    *,
    want_new: bool = False,
    handoff: Handoff | None = None,
) -> None:
    """Stores the events, and for each one not stored before, its runs and the waits it
    resumes or the runs its cancel rules cancel; says what it did in `report` (with
    `want_new`, whether each event was new: False for an id already stored).

    Set-based: one statement stores every event, one reads the waits of all their names,
    and one per table stores every run without flow control, so a batch of a thousand
    costs a handful of statements."""
    if not events:
        return
    rows = [
        [
            item.event.id,
            item.event.name,
            item.data_json,
            item.event.ts,
            to_json(item.event.user),
            item.event.v,
            item.received_at,
            to_json(item.event.meta),
            item.event.trace,
            item.event.tracestate,
        ]
        for item in events
    ]
    inserted = tx("insert_events", rows=to_json(rows))
    # asked for now: pipelined, answered with the ids in one round trip
    known = WaitsByName(tx, {item.event.name: None for item in events})
    stored = {row["id"] for row in inserted.fetchall()}
    plain: list[NewRun] = []  # runs without flow control, cancel rules or a final status
    for item in events:
        is_new = item.event.id in stored
        stored.discard(item.event.id)  # a repeat later in this batch is not new
        if want_new:
            report.new.append(is_new)
        if not is_new:
            continue
        for run in item.runs:
            if run.flow is NO_FLOW and not run.waits and not run.status.is_final:
                plain.append(run)
            else:
                insert_run(tx, run, report)
        resume_waits(tx, item.event, item.received_at, known, report)
    if plain:
        insert_plain_runs(tx, plain, events, handoff)


def insert_plain_runs(
    tx: Tx,
    runs: list[NewRun],
    events: Sequence[NewEvent] = (),
    handoff: Handoff | None = None,
) -> None:
    """`insert_run` for many runs without flow control, one statement per table. Those
    `handoff` takes are stored as a claim leaves them (leased with fence 1, started, a
    "started" entry), so its worker runs them with no update after the inserts, and their
    claims are given to it."""
    taken = [] if handoff is None else _taken(runs, handoff)
    now = taken[0].created_at if taken else 0.0
    owner = None if handoff is None else handoff.owner
    leased = {run.id for run in taken}
    runs_rows, jobs_rows, history_rows = [], [], []
    for r in runs:
        started = r.id in leased
        runs_rows.append(
            [
                r.id,
                r.function_id,
                RunStatus.RUNNING.value if started else r.status.value,
                to_json(r.event_ids),
                r.created_at,
                r.parent_run_id,
                r.parent_step,
                r.reason,
                now if started else None,
            ]
        )
        until = handoff.lease_until if started and handoff is not None else r.available_at
        jobs_rows.append(
            [r.id, r.function_id, until, r.holds, r.available_at]
            + ([owner, 1] if started else [None, 0])
        )
        history_rows.append([r.id, r.created_at, "queued", to_json(queued_reason(r) or None)])
    started_entry = to_json({"worker": owner})
    history_rows.extend([run.id, now, "started", started_entry] for run in taken)
    tx("insert_runs", rows=to_json(runs_rows))
    tx("link_run_events", rows=to_json([[e, r.id] for r in runs for e in r.event_ids]))
    tx("insert_jobs", rows=to_json(jobs_rows))
    tx("insert_history_rows", rows=to_json(history_rows))
    if handoff is not None and taken:
        handoff.claims = _claims(taken, events, handoff, now)


def _taken(runs: list[NewRun], handoff: Handoff) -> list[NewRun]:
    """The runs a send's hand-off takes: its worker's functions, due now, up to its limit."""
    return [
        run
        for run in runs
        if run.function_id in handoff.functions and run.available_at <= run.created_at
    ][: handoff.limit]


def _claims(
    taken: list[NewRun], events: Sequence[NewEvent], handoff: Handoff, now: float
) -> list[Claim]:
    by_id = {item.event.id: item.event for item in events}
    return [
        Claim(
            Lease(run.id, 1, handoff.owner),
            Run(
                id=run.id,
                function_id=run.function_id,
                status=RunStatus.RUNNING,
                event_ids=list(run.event_ids),
                created_at=run.created_at,
                started_at=now,
            ),
            [by_id[i] for i in run.event_ids if i in by_id],
        )
        for run in taken
    ]


def insert_run(tx: Tx, run: NewRun, report: IntakeReport) -> None:
    if run.flow is not NO_FLOW and not run.status.is_final:
        admitted = flow.admit(tx, run, report)
        if admitted is None:
            return  # the event joined a run that is waiting for more (debounce, batch)
        run = admitted
    final = run.status.is_final
    tx(
        "insert_run",
        id=run.id,
        function_id=run.function_id,
        status=run.status.value,
        event_ids=to_json(run.event_ids),
        created_at=run.created_at,
        parent_run_id=run.parent_run_id,
        parent_step=run.parent_step,
        reason=run.reason,
        ended_at=run.created_at if final else None,
    )
    for event_id in run.event_ids:
        tx("link_run_event", event_id=event_id, run_id=run.id)
    if final:
        insert_history(
            tx, run.id, HistoryEntry(run.created_at, run.status.value, queued_reason(run))
        )
        return
    tx(
        "insert_job",
        run_id=run.id,
        function_id=run.function_id,
        available_at=run.available_at,
        **flow.job_columns(run),
    )
    for wait in run.waits:
        insert_wait(tx, wait)
    insert_history(tx, run.id, HistoryEntry(run.created_at, "queued", queued_reason(run)))


def insert_wait(tx: Tx, wait: Wait) -> None:
    tx(
        "insert_wait",
        run_id=wait.run_id,
        hashed_id=wait.hashed_id,
        event=wait.event,
        condition=wait.condition,
        trigger_event=to_json(wait.trigger_event),
        expires_at=wait.expires_at,
        match_path=wait.match_path,
        match_key=wait.match_key,
        kind=wait.kind.value,
    )
    if wait.match_path is not None:
        tx("insert_wait_path", event=wait.event, match_path=wait.match_path)


def queued_reason(run: NewRun) -> dict[str, Any]:
    return {"reason": run.reason} if run.reason else {}


class WaitsByName:
    """An intake batch's waits matched by scanning, and the key paths of its keyed ones,
    per event name: asked for in one statement when the batch starts, read once."""

    def __init__(self, tx: Tx, names: Iterable[str]) -> None:
        self._tx = tx
        self._names = list(names)
        self._asked: Cursor | None = self._ask()
        self._read: dict[str, tuple[list[Wait], list[str]]] = {}
        self.gone: set[tuple[str, str]] = set()  # (run_id, hashed_id) resolved since

    def _ask(self) -> Cursor:
        if len(self._names) == 1:  # one name: a plan the server keeps (see the query)
            return self._tx("waits_of_name", name=self._names[0])
        return self._tx("waits_of_names", names=Many(self._names))

    def get(self, name: str) -> tuple[list[Wait], list[str]]:
        if self._asked is None:  # forgotten: asked again
            self._asked = self._ask()
        if not self._read:
            self._read = {each: ([], []) for each in self._names}
            for row in self._asked.fetchall():
                waits, paths = self._read[row["event"]]
                if row["match_path"] is not None:
                    paths.append(row["match_path"])
                else:
                    waits.append(wait_from_row(row))
        return self._read.get(name, ([], []))

    def forget(self) -> None:
        """A run was cancelled: its waits are gone, read them all again when next asked."""
        self._asked = None
        self._read = {}
        self.gone.clear()


def resume_waits(
    tx: Tx, event: Event, now: float, known: WaitsByName, report: IntakeReport
) -> None:
    # only the waits that may match: unkeyed ones, and keyed ones whose key is this event's
    unkeyed, paths = known.get(event.name)
    candidates = [w for w in unkeyed if (w.run_id, w.hashed_id) not in known.gone]
    if paths:
        incoming = event.to_dict()
        for path in paths:
            key = key_at(incoming, path)
            if key is not None:
                found = tx("waits_by_key", event=event.name, match_path=path, match_key=key)
                for row in found.fetchall():
                    candidates.append(wait_from_row(row))
    for wait in candidates:
        if wait.expires_at < now:
            continue  # lapsed: the run resolves it as timed out when it resumes
        if not match_wait(wait, event):
            continue
        if wait.kind is WaitKind.CANCEL:
            cancel_run(tx, wait.run_id, now, report)
            known.forget()  # the cancelled run's waits may be gone: read them again
            continue
        resolved = tx(
            "resolve_step",
            status=StepStatus.COMPLETED.value,
            output=to_json(event.to_dict()),
            error=None,
            ended_at=now,
            run_id=wait.run_id,
            hashed_id=wait.hashed_id,
            from_status=StepStatus.WAITING.value,
        ).rowcount
        tx("delete_wait", run_id=wait.run_id, hashed_id=wait.hashed_id)
        known.gone.add((wait.run_id, wait.hashed_id))
        if resolved:
            tx("nudge", now=now, run_id=wait.run_id)
