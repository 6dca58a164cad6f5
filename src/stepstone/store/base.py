"""The Store: the one interface to persistence, in domain terms.

Every write made on behalf of a run carries its `Lease`; a store refuses a write
whose fencing token is no longer the run's current one (LeaseLostError), so a worker
that lost a run can never overwrite the work of the worker that took it over.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..records import Event, HistoryEntry, Page, Run, RunStatus, StepRecord
from .filewatch import FileWatch


@dataclass(frozen=True)
class Lease:
    run_id: str
    fence: int
    owner: str
    keys: tuple[str, ...] = ()  # concurrency keys whose slots this run holds while leased
    holds: int = (
        0  # flow keys held: 1 debounce/batch (until it starts), 2 singleton (until it ends)
    )


class WaitKind(enum.StrEnum):
    STEP = "step"  # a step waiting for an event: the event resumes it
    CANCEL = "cancel"  # a cancel_on rule of its run: the event cancels the run


@dataclass(frozen=True)
class Wait:
    run_id: str
    hashed_id: str
    event: str
    condition: str | None
    trigger_event: dict[str, Any]
    expires_at: float
    match_path: str | None = None  # an indexable condition: the incoming event's path ...
    match_key: str | None = None  # ... and the value there that matches (waitkeys.py)
    kind: WaitKind = WaitKind.STEP


@dataclass(frozen=True)
class FlowPlan:
    """Flow control for one run, as keys and numbers (the functions' options, evaluated)."""

    priority: int = 0  # seconds: the run is queued as if it came this much earlier
    concurrency: tuple[tuple[str, int], ...] = ()  # (key, limit): executing at once
    throttle: tuple[str, int, float, int] | None = None  # key, limit, period, burst
    rate_limit: tuple[str, int, float] | None = None  # key, limit, period
    debounce: tuple[str, float, float | None] | None = None  # key, period, timeout
    batch: tuple[str, int, float] | None = None  # key, max_size, timeout
    idempotency: str | None = None  # key (one run per key per 24 h)
    singleton: tuple[str, str] | None = None  # key, mode ("skip" | "cancel")


NO_FLOW = FlowPlan()


@dataclass(frozen=True)
class NewRun:
    id: str
    function_id: str
    event_ids: list[str]
    created_at: float
    available_at: float
    parent_run_id: str | None = None  # an invoked run: resume this run's step when it ends
    parent_step: str | None = None
    status: RunStatus = RunStatus.QUEUED
    reason: str | None = None  # why a run was created skipped
    waits: list[Wait] = field(default_factory=list)  # cancel_on rules it listens for
    flow: FlowPlan = NO_FLOW
    holds: int = 0  # set by the store: flow keys this run holds


@dataclass(frozen=True)
class NewEvent:
    """A validated event, its serialized data, and the runs it triggers if it is new."""

    event: Event  # with id and ts set
    data_json: str
    received_at: float
    runs: list[NewRun] = field(default_factory=list)


@dataclass
class IntakeReport:
    """What storing events did beyond storing them: which were new (a repeated id is
    accepted and ignored), and which runs their cancel rules cancelled (or, when a worker
    holds the run, asked to stop), of which `ended` were ended by the store itself (no
    worker held them). The process that stored them stops those runs, and announces those
    that ended (intake.Intake.settle): no worker ever will."""

    new: list[bool] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def clear(self) -> None:
        """A script run again (a batch rerun) reports afresh."""
        self.new.clear()
        self.cancelled.clear()
        self.ended.clear()


@dataclass(frozen=True)
class Claim:
    lease: Lease
    run: Run  # with its steps
    events: list[Event]
    cancel_requested: bool = False
    due: float | None = None  # claimed ahead of this time (claim's `ahead`): start it then
    taken_over: bool = False  # its lease had expired while another worker held it


@dataclass
class Handoff:
    """An idle worker of the sending process takes the runs a send creates in the send's
    own transaction: up to `limit` runs of its `functions` without flow control, leased to
    `owner` until `lease_until` and marked started, as a claim would. It saves the claim's
    transaction between an event and its run's first step. The store fills `claims`.

    `idle`: the worker has nothing in flight, so nothing else on its event loop waits
    while a send that starts one of its runs commits there (SQLite: no thread hand-off to
    the writer and back, which after an idle spell costs as much as the commit)."""

    owner: str
    limit: int
    functions: frozenset[str]
    lease_until: float
    idle: bool = False
    claims: list[Claim] = field(default_factory=list)

    def takes_any(self, events: Sequence[NewEvent]) -> bool:
        """Whether these events start a run this worker would take."""
        return any(run.function_id in self.functions for item in events for run in item.runs)


RunPage = Page[Run]


@dataclass(frozen=True)
class Pruned:
    """What a prune deleted: finished runs (with their steps and history) and events."""

    runs: int
    events: int
    # how long its statements held the database (the commit aside), what the next batch
    # is sized by (engine/pruning.py); a prune of many batches: their sum
    seconds: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class StoredEvent:
    event: Event
    received_at: float
    run_ids: list[str]


@dataclass(frozen=True)
class SyncedAppRecord:
    """An app synced by an official SDK, as stored; its functions are published apart."""

    id: str
    url: str
    sdk: str
    framework: str | None
    app_version: str | None
    synced_at: float
    error: str | None = None  # the last sync's error; None: it succeeded


class Store(abc.ABC):
    """Persistence for events, runs, steps, jobs (leases and timers) and waits."""

    url: str
    # How often an idle worker looks for due work when nothing wakes it. A store that
    # pushes wake-ups to `subscribe`rs (PostgreSQL's LISTEN/NOTIFY) needs only a slow
    # fallback poll; one that cannot (SQLite: other processes cannot signal us) polls often.
    poll_interval: float = 0.25
    # how early a worker claims a sleeping or retrying run, by default: about as long as
    # a claim takes under load, so that the run is in hand when its time comes
    claim_ahead: float = 0.02
    # seconds the statements of one prune batch may hold the database (engine/pruning.py
    # sizes the batches to it): a checkpoint that comes meanwhile waits for them where the
    # database has one writer (SQLite), so it is kept to about a commit's time (1 ms gave
    # a p99 a third lower than 2 ms, for a prune 40% slower: bench/FINDINGS.md)
    prune_budget: float = 0.001

    # -- lifecycle -------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, and create or migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def subscribe(self, wake: Callable[[], None], cancel: Callable[[str], None]) -> None:
        """Call `wake()` when work may have arrived from another process, and `cancel(run_id)`
        when a run is asked to stop. Both may be called from any thread, and spuriously.

        The default does nothing: the worker then finds work by polling (`poll_interval`).
        """
        return None

    async def unsubscribe(self, wake: Callable[[], None]) -> None:
        """Stop the calls registered by `subscribe(wake, ...)`."""
        return None

    @abc.abstractmethod
    async def pending_migrations(self) -> list[int]:
        """Asks the database which migrations this code knows and the schema lacks (empty:
        the schema is current); raises when the database does not answer."""

    # -- intake ------------------------------------------------------------------------
    @abc.abstractmethod
    async def ingest(
        self, events: Sequence[NewEvent], *, handoff: Handoff | None = None
    ) -> IntakeReport:
        """Store events (ignoring ids already stored), create the runs of the new ones and
        resume the waits they match (their `if_` expressions evaluated here), in one
        transaction. Every path that stores events does the same: a step's events, an
        invoke's, a run end's announcements. With `handoff`, the same transaction also
        leases new runs to that worker (see Handoff), as a claim would.
        """

    @abc.abstractmethod
    async def create_runs(
        self, runs: Sequence[NewRun], steps: Sequence[tuple[str, StepRecord]] = ()
    ) -> IntakeReport:
        """Create runs for events already stored (reruns), with steps they start with."""

    # -- the function registry ------------------------------------------------------------
    @abc.abstractmethod
    async def register_functions(
        self, app_id: str, configs: Sequence[dict[str, Any]], now: float
    ) -> None:
        """Publish an app's functions (replacing what that app published before)."""

    @abc.abstractmethod
    async def registered_functions(self) -> list[dict[str, Any]]:
        """Every published function config."""

    @abc.abstractmethod
    async def save_app(
        self, app: SyncedAppRecord, configs: Sequence[dict[str, Any]] | None
    ) -> None:
        """Store a synced app and publish its functions (`configs`) in one transaction.

        `configs` None: the sync failed; only the app's `synced_at` and `error` change and
        its functions stay as they were.
        """

    @abc.abstractmethod
    async def list_apps(self) -> list[SyncedAppRecord]:
        """Every synced app, by id."""

    # -- the queue -----------------------------------------------------------------------
    @abc.abstractmethod
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
        """Lease up to `limit` runs that are due, oldest first, with their steps and events:
        runs already started first, then at most `starts` (default: `limit`) not started.
        A released run due within `ahead` seconds is leased too, with its `due` time.
        `inline`: the caller has nothing else in flight (an idle worker), so a store may
        commit on the caller's thread rather than queue for a group commit."""

    @abc.abstractmethod
    async def renew(self, leases: Sequence[Lease], until: float) -> tuple[list[str], list[str]]:
        """Extend leases; returns (run ids whose lease was lost, run ids asked to cancel)."""

    @abc.abstractmethod
    async def release(
        self, leases: Sequence[tuple[Lease, float]], now: float, owner: str
    ) -> list[str]:
        """Hand runs back at once, each (lease, due time): a stopping worker's, so that
        another worker resumes them without waiting for the leases to expire. A lease that
        no longer holds is left alone; a run woken meanwhile is due `now`. Returns the run
        ids released (each gets a "released" history entry naming `owner`)."""

    @abc.abstractmethod
    async def prune(self, before: float, *, limit: int) -> Pruned:
        """Delete up to `limit` runs that ended before `before`, with their steps, history,
        waits and flow keys, and up to `limit` events received before then that no run
        links to any more; one short transaction (where the database allows, on a
        connection of its own, so that no checkpoint waits for its statements). Runs not
        ended are never touched."""

    @abc.abstractmethod
    async def backlog(self, now: float) -> tuple[int, float | None]:
        """How many runs are due by `now` and wait for a worker (an expired lease too), and
        the due time of the oldest (None when none waits)."""

    @abc.abstractmethod
    async def next_due(self) -> float | None:
        """When the earliest job becomes due (None when there is none)."""

    def change_probe(self) -> Callable[[], bool] | None:
        """A cheap, non-blocking call: True when another process has committed since the
        previous call (it may err towards True; it must never miss a change it reports
        as False).

        An idle worker calls it every few milliseconds to learn of work sent from other
        processes without waiting for its poll. None: the store has no such signal.
        """
        return None

    def change_watch(self) -> FileWatch | None:
        """A file descriptor that becomes readable when some process may be committing
        (SQLite: its WAL file is written), so that an idle worker asks `change_probe` at
        once rather than at its next tick. None: the probe's timer alone. The store
        closes it when it closes."""
        return None

    # -- checkpoints (fenced) ---------------------------------------------------------------
    @abc.abstractmethod
    async def save_step(
        self,
        lease: Lease,
        step: StepRecord,
        output_json: str | None,
        history: Sequence[HistoryEntry] = (),
        *,
        inline: bool = False,
    ) -> None:
        """Save a step, durably, before returning. `inline`: the caller runs alone, so a
        store may commit on the caller's thread rather than queue for a group commit."""

    @abc.abstractmethod
    async def save_step_with_events(
        self, lease: Lease, step: StepRecord, output_json: str, events: Sequence[NewEvent]
    ) -> IntakeReport:
        """Save a step that sent events, and ingest those events, atomically."""

    @abc.abstractmethod
    async def register_wait(self, lease: Lease, step: StepRecord, wait: Wait) -> None: ...

    @abc.abstractmethod
    async def start_invoke(
        self, lease: Lease, step: StepRecord, child_event: NewEvent
    ) -> IntakeReport:
        """Save the invoking step and ingest the event that starts the invoked run,
        atomically."""

    @abc.abstractmethod
    async def expire_step(self, lease: Lease, step: StepRecord) -> StepRecord:
        """Save a timed-out wait/invoke unless it ended meanwhile; return the step as saved."""

    @abc.abstractmethod
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
        """Release the run until `at` (a sleep, a wait's timeout, a retry)."""

    @abc.abstractmethod
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
        """End the run; resume the parent of an invoked run; ingest `follow_up` events."""

    # -- operator actions ----------------------------------------------------------------
    @abc.abstractmethod
    async def request_cancel(self, run_id: str, now: float) -> IntakeReport:
        """Ask a run to stop. The report names it in `cancelled` (empty: it had already
        ended), and in `ended` too when no worker held it and it ended here at once."""

    # -- reads ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_run(self, run_id: str, *, with_history: bool = False) -> Run | None: ...

    @abc.abstractmethod
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
        event_filter: Callable[[Event], bool] | None = None,
    ) -> RunPage:
        """Runs, newest first. `event_name`: runs of an event whose name matches it (`*`
        matches any characters). `event_filter`: runs whose trigger event it passes; such
        a search reads runs in bounded pages, and may answer fewer than `limit` runs with
        a `next_cursor` to go on from (run_search.SCAN_MAX)."""

    @abc.abstractmethod
    async def run_events(self, run_ids: Sequence[str]) -> list[StoredEvent]:
        """The events of these runs, in no order."""

    @abc.abstractmethod
    async def reruns_of(self, run_id: str) -> list[str]:
        """The ids of the runs started as reruns of this run, oldest first."""

    @abc.abstractmethod
    async def runs_for_event(self, event_id: str) -> list[Run]: ...

    @abc.abstractmethod
    async def get_event(self, event_id: str) -> StoredEvent | None: ...

    @abc.abstractmethod
    async def list_events(
        self, *, name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[StoredEvent]:
        """Events, newest first; `cursor` is the `next_cursor` of the page before."""

    @abc.abstractmethod
    async def add_history(self, run_id: str, entry: HistoryEntry) -> None: ...
