"""Storing planned events, and what follows from it in this process: the runs a matching
event cancelled are stopped here and announced, and the workers are woken."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from . import metrics, tracing
from .engine import runlog
from .planning import Planner, RawEvents
from .records import RunStatus
from .signals import Signals
from .store import IntakeReport, NewEvent, Store

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
        with tracing.sending() as span:  # the events carry its trace context
            planned = self.planner.events(events, trace=span.context)
            span.planned([item.event for item in planned])
            metrics.events_received(len(planned))
            # an idle worker of this process takes the new runs in the same transaction: no
            # claim between the event and the first step
            taking = self.signals.handoff()
            report = await store.ingest(planned, handoff=None if taking is None else taking[1])
            if taking is not None and taking[1].claims:
                taking[0].accept(taking[1].claims)
            await self.settle(store, report)
        self.signals.wake_workers()
        return [item.event.id for item in planned if item.event.id is not None]

    async def store(self, planned: Sequence[NewEvent]) -> None:
        """Store events planned by the engine itself (cron ticks)."""
        store = await self._store()
        report = await store.ingest(planned)
        metrics.events_received(len(planned))
        await self.settle(store, report)
        self.signals.wake_workers()

    async def settle(self, store: Store, report: IntakeReport) -> None:
        """The runs a write cancelled (a `cancel_on` rule matched, a singleton's new run,
        an operator's cancel): their invocations in this process stop; those the store
        ended itself (no worker held them, so none ever ends them) are logged, given
        their run span and announced here, once: no other process is told of them."""
        pending, ended, seen = list(report.cancelled), set(report.ended), set[str]()
        while pending and len(seen) < MAX_CANCEL_CHAIN * max(1, len(report.cancelled)):
            run_id = pending.pop(0)
            if run_id in seen:
                continue
            seen.add(run_id)
            self.signals.cancelled(run_id)
            if run_id not in ended:
                continue  # a worker holds it: it ends the run, and announces it then
            run = await store.get_run(run_id)
            if run is None or run.status is not RunStatus.CANCELLED:
                continue  # pruned or rerun meanwhile: nothing is left to announce
            runlog.cancelled_idle(run)
            ended_at = run.ended_at if run.ended_at is not None else run.created_at
            metrics.run_ended(
                run.function_id, RunStatus.CANCELLED, ended_at - (run.started_at or run.created_at)
            )
            stored = await store.get_event(run.event_ids[0]) if run.event_ids else None
            first = stored.event if stored else None
            tracing.run_ended_idle(run, first)
            announced = self.planner.lifecycle_events(
                run, RunStatus.CANCELLED, event=first, trace=tracing.run_span(run.id, first)
            )
            follow = await store.ingest(announced)
            pending.extend(follow.cancelled)
            ended.update(follow.ended)
        self.signals.wake_workers()
