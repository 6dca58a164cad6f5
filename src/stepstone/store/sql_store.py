"""Store logic shared by SQLite and PostgreSQL: each operation is one transaction script.

A script is a plain function of a `Tx`; the dialect decides on which thread and
connection it runs (SQLite: a single writer thread that group-commits; PostgreSQL: a
pool of connections), so the logic is written once for both databases.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from ..errors import LeaseLostError
from ..records import Event, HistoryEntry, Run, RunStatus, StepRecord, StepStatus
from ..waitkeys import key_at
from . import flow_scripts, run_search
from .base import (
    NO_FLOW,
    Claim,
    Handoff,
    Lease,
    NewEvent,
    NewRun,
    RunPage,
    Store,
    StoredEvent,
    Wait,
    WaitMatcher,
)

T = TypeVar("T")
_FINAL = ("completed", "failed", "cancelled", "skipped")


class Cursor(Protocol):
    @property  # read-only, as sqlite3's and psycopg's cursors have it
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Many(list[Any]):
    """A list parameter, for `IN`/`ANY` over many values in one statement: an array on
    PostgreSQL, JSON text (read with `json_each`) on SQLite."""


class Tx(Protocol):
    def __call__(self, name: str, *params: Any) -> Cursor: ...


class Deferred(Generic[T]):
    """What a script returns when its outcome depends on results it has not read yet.

    The dispatcher calls `resolve()` before COMMIT. On PostgreSQL, whose statements are
    pipelined, a batch's scripts first send all their statements back to back, and the
    results are awaited once for the whole batch when the first `resolve()` reads one;
    a check that fails there fails its script as if it had failed at once."""

    __slots__ = ("resolve",)

    def __init__(self, resolve: Callable[[], T]) -> None:
        self.resolve = resolve


def resolved(value: Deferred[T] | T) -> T:
    """A script's result, with a `Deferred` one resolved."""
    return value.resolve() if isinstance(value, Deferred) else value


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class SqlStore(Store, abc.ABC):
    # an event-name pattern as the dialect's list_runs query matches it
    name_pattern: Callable[[str], str] = staticmethod(run_search.glob_pattern)
    """All domain operations as transaction scripts; subclasses provide `_write`/`_read`."""

    @abc.abstractmethod
    async def _write(self, script: Callable[[Tx], T]) -> T: ...

    @abc.abstractmethod
    async def _read(self, script: Callable[[Tx], T]) -> T: ...

    async def _write_inline(self, script: Callable[[Tx], T]) -> T:
        """A write for a caller that runs alone; by default the same as `_write`."""
        return await self._write(script)

    async def _write_statement(self, script: Callable[[Tx], T], *, inline: bool = False) -> T:
        """A write of a single statement, atomic by itself: a dialect may run it without a
        transaction around it (and so without the BEGIN and COMMIT round trips). It may
        run twice if the connection is lost before its answer; it must be idempotent."""
        return await (self._write_inline(script) if inline else self._write(script))

    # -- intake ------------------------------------------------------------------------
    async def ingest(
        self,
        events: Sequence[NewEvent],
        matcher: WaitMatcher | None = None,
        *,
        handoff: Handoff | None = None,
    ) -> list[bool]:
        def script(tx: Tx) -> list[bool]:
            if handoff is not None:
                handoff.claims = []  # a script run again (a batch rerun) starts over
            return _ingest(tx, events, matcher, report=True, handoff=handoff)

        return await self._write(script)

    async def create_runs(
        self, runs: Sequence[NewRun], steps: Sequence[tuple[str, StepRecord]] = ()
    ) -> None:
        def script(tx: Tx) -> None:
            for run in runs:
                _insert_run(tx, run)
            for run_id, step in steps:
                _upsert_step(tx, run_id, step, None)

        await self._write(script)

    # -- the function registry ------------------------------------------------------------
    async def register_functions(
        self, app_id: str, configs: Sequence[dict[str, Any]], now: float
    ) -> None:
        def script(tx: Tx) -> None:
            current = {c["id"] for c in configs}
            for (old,) in tx("app_functions", app_id).fetchall():
                if old not in current:
                    tx("delete_function", old)
            for config in configs:
                tx("upsert_function", config["id"], app_id, _json(config), now)

        await self._write(script)

    async def registered_functions(self) -> list[dict[str, Any]]:
        return await self._read(
            lambda tx: [_load(row[0]) for row in tx("list_functions").fetchall()]
        )

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
    ) -> list[Claim]:
        new_limit = limit if starts is None else max(0, min(starts, limit))

        def script(tx: Tx) -> list[Claim]:
            # set-based, in phases that each send their statements before reading a
            # result: a claim costs the same few statements (and, pipelined, the same few
            # round trips) for one run as for fifty
            rows = tx("claim_due", now + ahead, now, limit, now, new_limit, limit).fetchall()
            gate = flow_scripts.Gate(tx, now, _history)
            admitted: dict[str, tuple[list[tuple[str, int]], int]] = {}
            due: dict[str, float] = {}
            for run_id, ckey1, climit1, ckey2, climit2, throttle, holds, at in rows:
                keys = [(k, n) for k, n in ((ckey1, climit1), (ckey2, climit2)) if k]
                if (keys or throttle) and not gate.admit(run_id, keys, throttle):
                    continue  # the gate keeps count of what it let through
                admitted[run_id] = (keys, holds)
                if at > now:
                    due[run_id] = at
            if not admitted:
                return []
            ids = Many(admitted)
            # a sleep that is over (or will be when its run is due) ends here, for the
            # whole claim at once, rather than by a checkpoint of its own from each run
            tx("end_due_sleeps", now, ids, now)
            lease_rows = _lease_and_start(tx, owner, now + lease_for, now, ids)
            for run_id, (_, holds) in admitted.items():
                if holds & flow_scripts.HOLDS_START_KEY:
                    tx("flow_release", run_id, "--")  # debounce and batch keys end at start
            run_rows, step_rows = tx("get_runs", ids), tx("run_steps_many", ids)
            event_rows = tx("get_run_events", ids)
            # everything is sent: the results are read now, in one round trip
            leased = {r[0]: (r[1], bool(r[2])) for r in lease_rows.fetchall()}
            runs = {row[0]: row for row in run_rows.fetchall()}
            steps: dict[str, list[StepRecord]] = {}
            for row in step_rows.fetchall():
                steps.setdefault(row[0], []).append(_step(row[1:]))
            events = {r[0]: _event(r).event for r in event_rows.fetchall()}
            claims = []
            for run_id, (keys, holds) in admitted.items():
                fence, cancel = leased[run_id]
                row = runs.get(run_id)
                if row is None:  # a job without its run cannot happen; drop it defensively
                    tx("delete_job", run_id)
                    continue
                run = _run(row, steps.get(run_id, []))
                lease = Lease(run_id, fence, owner, tuple(k for k, _ in keys), holds)
                its_events = [events[i] for i in run.event_ids if i in events]
                claims.append(Claim(lease, run, its_events, cancel, due.get(run_id)))
            return claims

        return await self._write(ClaimScript(script))

    async def renew(self, leases: Sequence[Lease], until: float) -> tuple[list[str], list[str]]:
        def script(tx: Tx) -> tuple[list[str], list[str]]:
            rows = _json([[lease.run_id, lease.fence] for lease in leases])
            renewed = {row[0]: row[1] for row in tx("renew_many", until, rows).fetchall()}
            missed = [lease for lease in leases if lease.run_id not in renewed]
            held: set[str] = set()
            if missed:  # lost, or held by another transaction (renewed next time)
                rows = _json([[lease.run_id, lease.fence] for lease in missed])
                held = {row[0] for row in tx("leases_held", rows).fetchall()}
            lost = [lease.run_id for lease in missed if lease.run_id not in held]
            return lost, [run_id for run_id, cancel in renewed.items() if cancel]

        return await self._write(script)

    async def next_due(self) -> float | None:
        def script(tx: Tx) -> float | None:
            row = tx("next_due").fetchone()
            return None if row is None or row[0] is None else float(row[0])

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
            written = _save_step_fenced(tx, lease, step, output_json)
            for entry in history:
                _history(tx, lease.run_id, entry)
            return written

        if not history:  # one statement: atomic without a transaction of its own
            await self._write_statement(StepSave(lease, step, output_json), inline=inline)
        else:
            await (self._write_inline(script) if inline else self._write(script))

    async def save_step_with_events(
        self, lease: Lease, step: StepRecord, output_json: str, events: Sequence[NewEvent]
    ) -> None:
        def script(tx: Tx) -> Deferred[None]:
            written = _save_step_fenced(tx, lease, step, output_json)
            _ingest(tx, events, None)
            return written

        await self._write(script)

    async def register_wait(self, lease: Lease, step: StepRecord, wait: Wait) -> None:
        def script(tx: Tx) -> Deferred[None]:
            written = _save_step_fenced(tx, lease, step, None)
            _insert_wait(tx, wait)
            return written

        await self._write(script)

    async def start_invoke(self, lease: Lease, step: StepRecord, child_event: NewEvent) -> None:
        def script(tx: Tx) -> Deferred[None]:
            written = _save_step_fenced(tx, lease, step, None)
            _ingest(tx, [child_event], None)
            return written

        await self._write(script)

    async def expire_step(self, lease: Lease, step: StepRecord) -> StepRecord:
        def script(tx: Tx) -> StepRecord:
            _check_fence(tx, lease)
            tx(
                "expire_step",
                step.status.value,
                _json(step.output),
                _json(step.error),
                step.ended_at,
                lease.run_id,
                step.hashed_id,
            )
            tx("delete_wait", lease.run_id, step.hashed_id)
            row = tx("get_step", lease.run_id, step.hashed_id).fetchone()
            return _step(row)

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
            _check_fence(tx, lease)
            tx("release", min(now, at), at, lease.run_id)
            flow_scripts.free_slots(tx, lease.keys, now)
            tx("set_run_status", status.value, attempt, lease.run_id)
            for entry in history:
                _history(tx, lease.run_id, entry)

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
    ) -> None:
        await self._write(RunEnd(lease, status, output_json, error, at, follow_up, history))

    async def request_cancel(self, run_id: str, now: float) -> bool:
        return await self._write(lambda tx: cancel_run(tx, run_id, now))

    async def add_history(self, run_id: str, entry: HistoryEntry) -> None:
        await self._write(lambda tx: _history(tx, run_id, entry))

    # -- reads ---------------------------------------------------------------------------
    async def get_run(self, run_id: str, *, with_history: bool = False) -> Run | None:
        return await self._read(
            lambda tx: _get_run(tx, run_id, with_steps=True, with_history=with_history)
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
                function_id,
                function_id,
                status_text,
                status_text,
                after,
                after,
                created_after,
                created_after,
                created_before,
                created_before,
                pattern,
                pattern,
                size,
            ).fetchall()
            return [_run(row) for row in rows]

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
                events = {row[0]: _event(row).event for row in tx("get_run_events", ids).fetchall()}
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
            return [_event(row) for row in tx("get_run_events", Many(run_ids)).fetchall()]

        return await self._read(script) if run_ids else []

    async def reruns_of(self, run_id: str) -> list[str]:
        return await self._read(
            lambda tx: [row[0] for row in tx("reruns_of", run_id, run_id).fetchall()]
        )

    async def runs_for_event(self, event_id: str) -> list[Run]:
        return await self._read(
            lambda tx: [_run(row) for row in tx("runs_for_event", event_id).fetchall()]
        )

    async def get_event(self, event_id: str) -> StoredEvent | None:
        return await self._read(lambda tx: _get_event(tx, event_id, with_runs=True))

    async def list_events(
        self, *, name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> list[StoredEvent]:
        def script(tx: Tx) -> list[StoredEvent]:
            before = None
            if cursor is not None:
                found = _get_event(tx, cursor)
                before = found.received_at if found else None
            # (received_at, id) orders events: a batch shares one received_at
            rows = tx("list_events", name, name, before, before, before, cursor, limit).fetchall()
            out = []
            for row in rows:
                event = _event(row)
                run_ids = [r[0] for r in tx("event_runs", event.event.id).fetchall()]
                out.append(StoredEvent(event.event, event.received_at, run_ids))
            return out

        return await self._read(script)


# -- transaction scripts --------------------------------------------------------------------
def _check_fence(tx: Tx, lease: Lease) -> None:
    row = tx("check_fence", lease.run_id).fetchone()
    if row is None or row[0] != lease.fence:
        _lease_lost(lease)


def _lease_lost(lease: Lease) -> NoReturn:
    raise LeaseLostError(
        f"run {lease.run_id} is no longer leased to {lease.owner} (fencing token "
        f"{lease.fence} is stale); another worker took it over or it ended"
    )


class ClaimScript:
    """A claim's script. Its writes need not be on disk when it returns: should the
    database lose them in a crash, the runs are simply due again, as if never claimed;
    and the first checkpoint a run writes under the lease commits durably, which puts
    everything written before it (the claim included) on disk first. A dialect may then
    commit it without waiting for the disk (PostgreSQL: synchronous_commit off)."""

    __slots__ = ("script",)

    def __init__(self, script: Callable[[Tx], list[Claim]]) -> None:
        self.script = script

    def __call__(self, tx: Tx) -> list[Claim]:
        return self.script(tx)


class StepSave:
    """The script of a step's checkpoint with nothing else in its transaction: a dialect
    may write several of them in one statement (`step_row` gives each one's columns)."""

    __slots__ = ("lease", "output_json", "step")

    def __init__(self, lease: Lease, step: StepRecord, output_json: str | None) -> None:
        self.lease, self.step, self.output_json = lease, step, output_json

    def __call__(self, tx: Tx) -> Deferred[None]:
        return _save_step_fenced(tx, self.lease, self.step, self.output_json)

    def step_row(self) -> list[Any]:
        """run_id, fence, then the columns save_step_fenced takes after the run id."""
        return [self.lease.run_id, self.lease.fence, *_step_columns(self.step, self.output_json)]

    def check(self, written: Callable[[], set[tuple[str, str]]]) -> Deferred[None]:
        """This save's outcome, given the (run_id, hashed_id) pairs a merged write wrote."""

        def check() -> None:
            if (self.lease.run_id, self.step.hashed_id) not in written():
                _lease_lost(self.lease)

        return Deferred(check)


class RunEnd:
    """The script of a run's end. One with no flow control to release and no runs to
    start is `mergeable`: a dialect may end several in one set of statements
    (merges.merge_run_ends)."""

    __slots__ = ("at", "error", "follow_up", "history", "lease", "output_json", "status")

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

    @property
    def mergeable(self) -> bool:
        lease = self.lease
        return not lease.keys and not lease.holds and not any(e.runs for e in self.follow_up)

    def history_rows(self) -> list[list[Any]]:
        """Its history entries as insert_history_rows takes them: the log lines, then the
        end itself (as `_finish` writes it)."""
        run_id = self.lease.run_id
        rows = [[run_id, h.at, h.kind, _json(h.data or None)] for h in self.history]
        ended = {"error": self.error} if self.error else None
        rows.append([run_id, self.at, self.status.value, _json(ended)])
        return rows

    def run_row(self) -> list[Any]:
        """id, status, output, error, ended_at: the columns finish_runs sets."""
        return [
            self.lease.run_id,
            self.status.value,
            self.output_json,
            _json(self.error),
            self.at,
        ]

    def __call__(self, tx: Tx) -> Deferred[None]:
        lease = self.lease
        # the job goes first, and only with our fencing token (its row lock taken before
        # the run's, in the order a claim takes them); whether it went is looked at
        # last: if not, the lease was lost, and the whole script is rolled back
        ended = tx("end_job", lease.run_id, lease.fence)
        for entry in self.history:
            _history(tx, lease.run_id, entry)
        parent = _finish(tx, lease.run_id, self.status, self.output_json, self.error, self.at)
        flow_scripts.free_slots(tx, lease.keys, self.at)
        if lease.holds:
            tx("flow_release", lease.run_id, "s:")
        _ingest(tx, self.follow_up, None)

        def check() -> None:
            if ended.rowcount == 0:
                _lease_lost(lease)
            self.resume_parent(tx, parent.fetchone())

        return Deferred(check)

    def resume_parent(self, tx: Tx, row: Any) -> None:
        """The invoking step of this run's parent gets its outcome (`row`: run_parent's)."""
        _resume_parent(
            tx, self.lease.run_id, row, self.status, self.output_json, self.error, self.at
        )


def _save_step_fenced(
    tx: Tx, lease: Lease, step: StepRecord, output_json: str | None
) -> Deferred[None]:
    """Writes the step if the lease is still ours; the returned check raises if it was not."""
    cursor = tx("save_step_fenced", *_step_columns(step, output_json), lease.run_id, lease.fence)

    def check() -> None:
        if cursor.rowcount == 0:
            _lease_lost(lease)

    return Deferred(check)


def _ingest(
    tx: Tx,
    events: Sequence[NewEvent],
    matcher: WaitMatcher | None,
    *,
    report: bool = False,
    handoff: Handoff | None = None,
) -> list[bool]:
    """Stores the events, and for each one not stored before, its runs and the waits it
    resumes. With `report`, returns whether each event was new (False: an id already
    stored, accepted and ignored).

    Set-based: one statement stores every event, and one per table every run without
    flow control, so a batch of a thousand costs a handful of statements. Which events
    were new is read only when something depends on it (a pipelined dialect then sends
    the whole script without waiting)."""
    rows = [
        [
            item.event.id,
            item.event.name,
            item.data_json,
            item.event.ts,
            _json(item.event.user),
            item.event.v,
            item.received_at,
        ]
        for item in events
    ]
    inserted = tx("insert_events", _json(rows))
    if not (report or matcher is not None or any(item.runs for item in events)):
        return []  # nothing depends on which were new: not read (no wait when pipelined)
    known = _WaitsByName()
    if matcher is not None:  # asked for now: answered with the ids, in one round trip
        known.send(tx, {item.event.name: None for item in events})
    stored = {row[0] for row in inserted.fetchall()}
    new: list[bool] = []
    plain: list[NewRun] = []  # runs without flow control, cancel rules or a final status
    for item in events:
        is_new = item.event.id in stored
        stored.discard(item.event.id)  # a repeat later in this batch is not new
        new.append(is_new)
        if not is_new:
            continue
        for run in item.runs:
            if run.flow is NO_FLOW and not run.waits and not run.status.is_final:
                plain.append(run)
            else:
                _insert_run(tx, run)
        if matcher is not None:
            _resume_waits(tx, item.event, matcher, item.received_at, known)
    if plain:
        _insert_plain_runs(tx, plain)
        if handoff is not None:
            _hand_off(tx, plain, events, handoff)
    return new


def _lease_and_start(tx: Tx, owner: str, until: float, now: float, ids: Many) -> Cursor:
    """Leases these jobs to `owner` and starts their runs, but for those asked to cancel
    (their worker ends them); returns the lease's (run_id, fence, cancel) rows."""
    leased = tx("lease_many", owner, until, ids)
    tx("mark_started_many", now, ids)
    tx("insert_started_many", now, _json({"worker": owner}), ids)
    return leased


def _hand_off(tx: Tx, plain: list[NewRun], events: Sequence[NewEvent], handoff: Handoff) -> None:
    """Leases new runs to the sending process's worker, as a claim would (fence 1, the
    same "started" status and entry), and gives it their claims."""
    taken = [
        run
        for run in plain
        if run.function_id in handoff.functions and run.available_at <= run.created_at
    ][: handoff.limit]
    if not taken:
        return
    now = taken[0].created_at
    _lease_and_start(tx, handoff.owner, handoff.lease_until, now, Many(run.id for run in taken))
    by_id = {item.event.id: item.event for item in events}
    handoff.claims = [
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


def _insert_plain_runs(tx: Tx, runs: list[NewRun]) -> None:
    """`_insert_run` for many runs without flow control, one statement per table."""
    columns = [
        [
            r.id,
            r.function_id,
            r.status.value,
            _json(r.event_ids),
            r.created_at,
            r.parent_run_id,
            r.parent_step,
            r.reason,
        ]
        for r in runs
    ]
    tx("insert_runs", _json(columns))
    tx("link_run_events", _json([[e, r.id] for r in runs for e in r.event_ids]))
    tx("insert_jobs", _json([[r.id, r.function_id, r.available_at, r.holds] for r in runs]))
    queued = [[r.id, r.created_at, "queued", _json(_reason(r) or None)] for r in runs]
    tx("insert_history_rows", _json(queued))


def _insert_run(tx: Tx, run: NewRun) -> None:
    if run.flow is not NO_FLOW and not run.status.is_final:
        admitted = flow_scripts.admit(tx, run, _history)
        if admitted is None:
            return  # the event joined a run that is waiting for more (debounce, batch)
        run = admitted
    final = run.status.is_final
    tx(
        "insert_run",
        run.id,
        run.function_id,
        run.status.value,
        _json(run.event_ids),
        run.created_at,
        run.parent_run_id,
        run.parent_step,
        run.reason,
        run.created_at if final else None,
    )
    for event_id in run.event_ids:
        tx("link_run_event", event_id, run.id)
    if final:
        _history(tx, run.id, HistoryEntry(run.created_at, run.status.value, _reason(run)))
        return
    tx("insert_job", run.id, run.function_id, run.available_at, *flow_scripts.job_columns(run))
    for wait in run.waits:
        _insert_wait(tx, wait)
    _history(tx, run.id, HistoryEntry(run.created_at, "queued", _reason(run)))


def _insert_wait(tx: Tx, wait: Wait) -> None:
    tx(
        "insert_wait",
        wait.run_id,
        wait.hashed_id,
        wait.event,
        wait.condition,
        _json(wait.trigger_event),
        wait.expires_at,
        wait.match_path,
        wait.match_key,
    )
    if wait.match_path is not None:
        tx("insert_wait_path", wait.event, wait.match_path)


def _reason(run: NewRun) -> dict[str, Any]:
    return {"reason": run.reason} if run.reason else {}


def cancel_run(tx: Tx, run_id: str, now: float) -> bool:
    """Cancel a run no worker holds now; flag one a worker holds (it stops the run)."""
    row = tx("job_owner", run_id).fetchone()
    if row is not None and row[0] is not None:
        # a worker holds it: it stops the run once the steps in flight are saved
        return bool(tx("flag_cancel", run_id).rowcount > 0)
    if tx("cancel_run_now", now, run_id).rowcount == 0:
        return False
    tx("close_open_steps", now, run_id)
    tx("delete_job", run_id)
    tx("delete_run_waits", run_id)
    tx("flow_release", run_id, "s:")
    _history(tx, run_id, HistoryEntry(now, "cancelled"))
    parent = tx("run_parent", run_id).fetchone()
    _resume_parent(tx, run_id, parent, RunStatus.CANCELLED, None, None, now)
    return True


class _WaitsByName:
    """An intake batch's unkeyed waits and key paths, read once per event name. `send`
    asks for several names' at once: pipelined, their answers come in one round trip."""

    def __init__(self) -> None:
        self._sent: dict[str, tuple[Cursor, Cursor]] = {}
        self._read: dict[str, tuple[list[Any], list[str]]] = {}
        self.gone: set[tuple[str, str]] = set()  # (run_id, hashed_id) resolved since

    def send(self, tx: Tx, names: Iterable[str]) -> None:
        for name in names:
            if name not in self._read and name not in self._sent:
                self._sent[name] = (tx("waits_unkeyed", name), tx("wait_paths", name))

    def get(self, tx: Tx, name: str) -> tuple[list[Any], list[str]]:
        found = self._read.get(name)
        if found is None:
            self.send(tx, (name,))
            unkeyed, paths = self._sent.pop(name)
            found = list(unkeyed.fetchall()), [row[0] for row in paths.fetchall()]
            self._read[name] = found
        return found

    def forget(self) -> None:
        self._sent.clear()
        self._read.clear()
        self.gone.clear()


def _resume_waits(
    tx: Tx, event: Event, matcher: WaitMatcher, now: float, known: _WaitsByName
) -> None:
    # only the waits that may match: unkeyed ones, and keyed ones whose key is this event's
    unkeyed, paths = known.get(tx, event.name)
    rows = [row for row in unkeyed if (row[0], row[1]) not in known.gone]
    if paths:
        incoming = event.to_dict()
        for path in paths:
            key = key_at(incoming, path)
            if key is not None:
                rows.extend(tx("waits_by_key", event.name, path, key).fetchall())
    for run_id, hashed_id, name, condition, trigger_event, expires_at in rows:
        if expires_at < now:
            continue  # lapsed: the run resolves it as timed out when it resumes
        wait = Wait(run_id, hashed_id, name, condition, _load(trigger_event), expires_at)
        if not matcher(wait, event):
            continue
        if hashed_id.startswith("cancel:"):
            cancel_run(tx, run_id, now)
            known.forget()  # the cancelled run's waits may be gone: read them again
            continue
        resolved = tx(
            "resolve_step",
            StepStatus.COMPLETED.value,
            _json(event.to_dict()),
            None,
            now,
            run_id,
            hashed_id,
            StepStatus.WAITING.value,
        ).rowcount
        tx("delete_wait", run_id, hashed_id)
        known.gone.add((run_id, hashed_id))
        if resolved:
            tx("nudge", now, now, run_id)


def _finish(
    tx: Tx,
    run_id: str,
    status: RunStatus,
    output_json: str | None,
    error: dict[str, Any] | None,
    at: float,
) -> Cursor:
    """Ends a run whose job is gone; returns the cursor of its parent's (run id, step),
    read by the caller with _resume_parent."""
    parent = tx("finish_run", status.value, output_json, _json(error), at, run_id)
    tx("close_open_steps", at, run_id)
    tx("delete_run_waits", run_id)
    data = {"error": error} if error else {}
    _history(tx, run_id, HistoryEntry(at, status.value, data))
    return parent


def _resume_parent(
    tx: Tx,
    run_id: str,
    row: Any,
    status: RunStatus,
    output_json: str | None,
    error: dict[str, Any] | None,
    at: float,
) -> None:
    """The invoking step of an ended run's parent (`row`: run_parent's) gets its outcome."""
    if row is None or row[0] is None:
        return
    parent_id, parent_step = row
    if status is RunStatus.COMPLETED:
        new_status, out, err = StepStatus.COMPLETED, output_json, None
    else:
        new_status, out = StepStatus.FAILED, None
        err = error or {
            "name": "InvokedRunEnded",
            "message": f"the invoked run {run_id} ended {status.value}",
            "stack": "",
        }
    resolved = tx(
        "resolve_step",
        new_status.value,
        out,
        _json(err),
        at,
        parent_id,
        parent_step,
        StepStatus.INVOKING.value,
    ).rowcount
    if resolved:
        tx("nudge", at, at, parent_id)


def _upsert_step(tx: Tx, run_id: str, step: StepRecord, output_json: str | None) -> None:
    tx("upsert_step", run_id, *_step_columns(step, output_json))


def _step_columns(step: StepRecord, output_json: str | None) -> tuple[Any, ...]:
    """A step's columns after its run id, as upsert_step and save_step_fenced take them."""
    if output_json is None and step.output is not None:
        output_json = _json(step.output)
    return (
        step.hashed_id,
        step.id,
        step.kind,
        step.status.value,
        step.attempts,
        output_json,
        _json(step.error),
        step.started_at,
        step.ended_at,
        step.wake_at,
        _json(step.detail),
    )


def _history(tx: Tx, run_id: str, entry: HistoryEntry) -> None:
    tx("insert_history", run_id, entry.at, entry.kind, _json(entry.data or None))


def _run(row: Any, steps: list[StepRecord] | None = None) -> Run:
    return Run(
        id=row[0],
        function_id=row[1],
        status=RunStatus(row[2]),
        attempt=row[3],
        event_ids=_load(row[4]),
        output=_load(row[5]),
        error=_load(row[6]),
        created_at=row[7],
        started_at=row[8],
        ended_at=row[9],
        steps=steps or [],
    )


def _step(row: Any) -> StepRecord:
    return StepRecord(
        id=row[0],
        hashed_id=row[1],
        status=StepStatus(row[2]),
        attempts=row[3],
        output=_load(row[4]),
        error=_load(row[5]),
        started_at=row[6],
        ended_at=row[7],
        kind=row[8],
        wake_at=row[9],
        detail=_load(row[10]),
    )


def _get_run(
    tx: Tx, run_id: str, *, with_steps: bool = False, with_history: bool = False
) -> Run | None:
    row = tx("get_run", run_id).fetchone()
    if row is None:
        return None
    steps = [_step(r) for r in tx("run_steps", run_id).fetchall()] if with_steps else []
    run = _run(row, steps)
    if with_history:
        history = [
            HistoryEntry(at, kind, _load(data) or {})
            for at, kind, data in tx("run_history", run_id).fetchall()
        ]
        run = Run(**{**run.__dict__, "history": history})
    return run


def _event(row: Any) -> StoredEvent:
    event = Event(
        name=row[1], data=_load(row[2]), id=row[0], ts=row[3], user=_load(row[4]), v=row[5]
    )
    return StoredEvent(event, row[6], [])


def _get_event(tx: Tx, event_id: str, *, with_runs: bool = False) -> StoredEvent | None:
    row = tx("get_event", event_id).fetchone()
    if row is None:
        return None
    found = _event(row)
    if with_runs:
        run_ids = [r[0] for r in tx("event_runs", event_id).fetchall()]
        found = StoredEvent(found.event, found.received_at, run_ids)
    return found
