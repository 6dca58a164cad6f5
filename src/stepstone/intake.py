"""Storing planned events, and what follows from it in this process: the runs a matching
event cancelled are stopped here and announced, and the workers are woken."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from . import metrics, tracing
from .engine import runlog
from .planning import Planner, RawEvents
from .records import RunStatus
from .signals import Signals
from .store import NewEvent, Store

# a cancellation announces itself with events that may cancel other runs: a chain this
# long is a loop of cancel rules, not a design
MAX_CANCEL_CHAIN = 32


class Intake:
    def __init__(
        self, planner: Planner, signals: Signals, store: Callable[[], Awaitable[Store]]
    ) -> None:
        self.planner = planner
        self.signals = signals
        self._store = store

    async def send(self, events: RawEvents) -> list[str]:
        """Validate and store events with the runs they start and the waits they resume,
        in one transaction; return their ids. A repeated id is accepted and ignored."""
        store = await self._store()
        await self.planner.registry.refresh(store)
        with tracing.sending() as span:  # the events carry its traceparent
            planned = self.planner.events(events, trace=span.traceparent)
            span.planned([item.event for item in planned])
            metrics.events_received(len(planned))
            # an idle worker of this process takes the new runs in the same transaction: no
            # claim between the event and the first step
            taking = self.signals.handoff()
            report = await store.ingest(planned, handoff=None if taking is None else taking[1])
            if taking is not None and taking[1].claims:
                taking[0].accept(taking[1].claims)
            await self.settle(store, report.cancelled)
        self.signals.wake_workers()
        return [item.event.id for item in planned if item.event.id is not None]

    async def store(self, planned: Sequence[NewEvent]) -> None:
        """Store events planned by the engine itself (cron ticks)."""
        store = await self._store()
        report = await store.ingest(planned)
        metrics.events_received(len(planned))
        await self.settle(store, report.cancelled)
        self.signals.wake_workers()

    async def settle(self, store: Store, cancelled: Sequence[str]) -> None:
        """Runs an intake cancelled (a `cancel_on` rule matched): their invocations in this
        process stop, and those no worker held, which ended at once, are announced."""
        pending, seen = list(cancelled), set[str]()
        while pending and len(seen) < MAX_CANCEL_CHAIN * max(1, len(cancelled)):
            run_id = pending.pop(0)
            if run_id in seen:
                continue
            seen.add(run_id)
            self.signals.cancelled(run_id)
            run = await store.get_run(run_id)
            if run is None or run.status is not RunStatus.CANCELLED:
                continue  # a worker holds it: it ends the run, and announces it then
            runlog.cancelled_idle(run)
            stored = await store.get_event(run.event_ids[0]) if run.event_ids else None
            first = stored.event if stored else None
            announced = self.planner.lifecycle_events(run, RunStatus.CANCELLED, event=first)
            pending.extend((await store.ingest(announced)).cancelled)
        self.signals.wake_workers()
