"""The worker: claims due runs with a lease and executes them, fires crons and prunes.

What it owns: its leases are renewed and handed back by `leases.LeaseKeeper`, its runs
stopped (cancels, timeouts, the shutdown) by `stopping.RunStops`, and their functions
called through `invocations.Invocations`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from types import TracebackType

from .. import metrics, ops, tracing
from ..errors import ConfigError, LeaseLostError, error_record
from ..ids import new_id
from ..runtime import Runtime
from ..store import Claim, Handoff, Store, redact_url
from ..store.filewatch import FileWatch
from .changewait import wait_for_change
from .cron import CronScheduler
from .invocations import Invocations
from .leases import ActiveRun, LeaseKeeper
from .pacing import StartPacer
from .persist import RunWriter
from .pruning import prune_forever
from .stopping import RunStops

log = logging.getLogger("stepstone.worker")


class Worker:
    """Runs the functions of a runtime's registry; many workers, in many processes, may
    share one database."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 100,
        lease_seconds: float = 30.0,
        poll_interval: float | None = None,
        change_poll: float = 0.002,
        worker_id: str | None = None,
        sync_threads: int = 16,
        crons: bool = True,
        grace: float = 30.0,
        claim_ahead: float | None = None,
        prune_interval: float = 60.0,
    ) -> None:
        if concurrency < 1:
            raise ConfigError("worker concurrency must be at least 1")
        if lease_seconds <= 0.2:
            raise ConfigError("lease_seconds must be more than 0.2")
        self.runtime = runtime
        self.clock = runtime.clock
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        # None: the store's default (often on SQLite; a slow fallback where it pushes wake-ups)
        self._poll_option = poll_interval
        self.poll_interval = 0.25 if poll_interval is None else poll_interval
        # how often an idle worker asks the store whether another process committed
        # (SQLite's data_version); 0 turns it off and leaves only poll_interval
        self.change_poll = change_poll
        self._probe: Callable[[], bool] | None = None
        self._watch: FileWatch | None = None  # says when to ask the probe at once
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"
        if grace < 0:
            raise ConfigError("grace must be 0 seconds or more")
        # on stop, how long the steps running may take to finish and be saved
        self.grace = grace
        self._abort: asyncio.Event | None = None  # set: stop without waiting any more
        if claim_ahead is not None and not 0 <= claim_ahead <= 1:
            raise ConfigError("claim_ahead must be from 0 to 1 second")
        # a sleeping or retrying run due this soon is claimed early and held until its
        # time, so its wake-up does not wait for a claim (under load, one can take tens of
        # milliseconds); held runs do not count against `concurrency`. None: the store's
        self._claim_ahead_option = claim_ahead
        self.claim_ahead = 0.0 if claim_ahead is None else claim_ahead
        self._held = 0
        self._crons = crons
        self.prune_interval = prune_interval  # how often it deletes runs past retention
        self._pacer = StartPacer(self.clock.now())
        self._active: dict[str, ActiveRun] = {}
        self._runs: set[asyncio.Task[None]] = set()
        self._stops = RunStops(self.id, self.clock, self._active, self._runs)
        self._leases = LeaseKeeper(
            runtime, self.id, lease_seconds, self._active, self._stops.cancel
        )
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._invocations = Invocations(runtime, sync_threads=sync_threads, concurrency=concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: Store | None = None
        self.claimed = 0  # runs claimed by this worker, for tests and stats

    # -- lifecycle -------------------------------------------------------------------
    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stops.bind(self._loop)
        self._abort = asyncio.Event()
        runtime = self.runtime
        self._store = store = await runtime.store()
        self._leases.attach(store)
        if self._poll_option is None:
            self.poll_interval = store.poll_interval
        if self._claim_ahead_option is None:
            self.claim_ahead = store.claim_ahead
        if self.change_poll > 0:
            self._probe = store.change_probe()
            if self._probe is not None:
                self._watch = store.change_watch()
        await runtime.registry.publish(store, self.clock.now())
        runtime.signals.add_waker(self.wake)
        runtime.signals.add_taker(self)
        runtime.signals.add_cancel_listener(self._stops.cancel)
        # wake-ups and cancels from other processes (PostgreSQL: LISTEN/NOTIFY)
        await store.subscribe(self.wake, self._stops.cancel)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="stepstone-claim"),
            asyncio.create_task(self._leases.renew_forever(), name="stepstone-renew"),
        ]
        if self.prune_interval > 0:
            pruning = prune_forever(runtime, store, self.prune_interval)
            self._tasks.append(asyncio.create_task(pruning, name="stepstone-prune"))
        if self._crons:
            scheduler = CronScheduler(runtime)
            self._tasks.append(asyncio.create_task(scheduler.run(), name="stepstone-cron"))
        metrics.worker_running(1)
        log.info("worker %s started on %s", self.id, redact_url(runtime.database_url))

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop claiming, let the steps running finish within `grace` seconds and be saved,
        then hand every run this worker still holds back to the database at once: another
        worker resumes it now, not when its lease would have expired."""
        if self._stopping:
            return
        self._stopping = True
        signals = self.runtime.signals
        signals.remove_waker(self.wake)
        signals.remove_taker(self)
        signals.remove_cancel_listener(self._stops.cancel)
        if self._store is not None:
            try:
                await self._store.unsubscribe(self.wake)
            except Exception:
                log.exception("worker %s could not unsubscribe from wake-ups", self.id)
        self._wake.set()
        if self._tasks:  # a claim on its way spawns its runs before they are counted
            await asyncio.wait([self._tasks[0]], timeout=self.grace)
        if self._abort is not None:
            await self._stops.wind_down(self.grace, self._abort, self._leases)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._leases.release()
        if self._loop is not None:
            metrics.worker_running(-1)
        await self._invocations.close()

    def abort(self) -> None:
        """Cut a stop's grace short (a second SIGTERM): runs still in a step are dropped
        and handed back as they are (their steps run again elsewhere). Before a stop, it
        makes that stop skip its grace."""
        if self._abort is not None:
            self._abort.set()

    @property
    def busy(self) -> bool:
        """True while this worker executes at least one run."""
        return bool(self._active)

    def wake(self) -> None:
        """Claim now: called when work may be due (from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    # -- claiming --------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        assert self._store is not None
        store = self._store
        while not self._stopping:
            free = self._free_slots()
            if free > 0:
                asked, now = min(free, 50), self.clock.now()
                allowed = self._pacer.allowance(asked, now)
                began = time.perf_counter()
                try:
                    claims = await store.claim(
                        self.id,
                        asked,
                        now,
                        self.lease_seconds,
                        starts=allowed,
                        ahead=self._pacer.look_ahead(self.claim_ahead),
                        # nothing in flight: no checkpoint to group-commit with
                        inline=not self._active,
                    )
                except Exception:
                    log.exception("worker %s could not claim runs; retrying", self.id)
                    await asyncio.sleep(min(1.0, self.poll_interval * 4))
                    continue
                metrics.claimed(time.perf_counter() - began)
                tracing.claimed(claims, now, self.clock.now())
                started = 0
                for claim in claims:
                    if claim.lease.fence == 1:
                        started += 1
                    else:
                        self._pacer.resumed(claim.lease.run_id)
                    # the lease runs from the claim's request: a pause since then counts
                    self._spawn(claim, until=now + self.lease_seconds)
                self._pacer.claimed(asked, len(claims), started, allowed)
                if claims:
                    continue
                if allowed is not None:  # new runs may be waiting for their turn
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._pacer.delay(asked))
                    self._wake.clear()
                    continue
            await self._idle(store, free > 0)

    async def _idle(self, store: Store, can_claim: bool) -> None:
        timeout = self.poll_interval
        if can_claim:
            try:
                due = await store.next_due()
            except Exception:
                due = None
            if due is not None:
                soon = due - self.clock.now()
                # a run due beyond the look-ahead is claimed that much early; one due
                # within it that the last claim left (a live lease, a gated run) at its time
                if soon > self.claim_ahead:
                    soon -= self.claim_ahead
                timeout = max(0.0, min(timeout, soon))
        if timeout > 0:
            if self._probe is not None and can_claim:
                await wait_for_change(
                    self._wake,
                    self._probe,
                    self._watch,
                    change_poll=self.change_poll,
                    timeout=timeout,
                    busy=lambda: bool(self._active),
                )
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def _free_slots(self) -> int:
        """Runs it may take on: held runs (claimed ahead, not executing) do not count."""
        return self.concurrency - len(self._active) + self._held

    def handoff(self) -> Handoff | None:
        """What this worker takes of the runs a send of its process creates: as many as
        it has free slots, while it is not pacing new runs (a worker that keeps up), and
        only on its own event loop (the sync API sends from another)."""
        if self._stopping or self._store is None or self._pacer.overloaded:
            return None
        try:
            if asyncio.get_running_loop() is not self._loop:
                return None
        except RuntimeError:
            return None
        free = self._free_slots()
        if free <= 0:
            return None
        until = self.clock.now() + self.lease_seconds
        local = frozenset(self.runtime.registry.local)
        return Handoff(self.id, min(free, 50), local, until, idle=not self._active)

    def accept(self, claims: list[Claim]) -> None:
        """Runs a send leased to this worker (see handoff), as if it had claimed them."""
        for claim in claims:
            self._spawn(claim)

    def _spawn(self, claim: Claim, until: float | None = None) -> None:
        self.claimed += 1
        if claim.lease.fence == 1:
            metrics.run_started(claim.run.function_id)
        active = ActiveRun(claim.lease, stop=ops.CANCELLED if claim.cancel_requested else None)
        # handed off a moment ago (until unknown): a tenth of the lease covers the send
        active.held_until = until or self.clock.now() + self.lease_seconds * 0.9
        if self._stopping:  # leased by a send as this worker stops: straight back
            self._leases.hand_back(active, claim.due or self.clock.now())
            return
        self._active[claim.lease.run_id] = active
        task = active.task = asyncio.create_task(self._execute(claim, active))
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def _execute(self, claim: Claim, active: ActiveRun) -> None:
        assert self._store is not None
        runtime = self.runtime
        writer = RunWriter(runtime, self._store, claim, alone=self._alone)
        run = claim.run
        try:
            if claim.due is not None:  # claimed ahead of its time: it starts then
                self._held += 1
                active.held = claim.due
                try:
                    await self.clock.sleep(claim.due - self.clock.now())
                finally:
                    self._held -= 1
                    active.held = None
            if active.lost:  # lost while it was held (the worker was paused, say)
                raise LeaseLostError(f"run {run.id}: lost before it started")
            if self._stopping:
                self._leases.hand_back(active, self.clock.now())
                return
            fn = self._invocations.function_of(run.function_id)
            if fn is not None and fn.timeouts is not None and active.stop is None:
                self._stops.arm_timeouts(claim, fn.timeouts, active, writer)
            if active.stop is not None:
                await writer.outcome(ops.Abandoned(str(active.stop)), stop=active.stop)
                return
            if fn is None:
                error = error_record(
                    "FunctionNotFound",
                    f"no function {run.function_id!r} is registered in app "
                    f"{runtime.app_id!r} on worker {self.id}; deploy it, then rerun this run",
                )
                await writer.outcome(ops.RunFailed(error))
                return
            invocation = self._invocations.for_run(
                claim,
                fn,
                writer,
                lease_held=lambda: not active.lost and self.clock.now() < active.held_until,
                renew_lease=lambda: self._leases.renew_one(active),
            )
            active.invocation = invocation
            writer.take_logs = invocation.take_logs
            if active.stop is not None:
                invocation.stop(str(active.stop))
            outcome = await invocation.execute()
            if active.lost:
                return
            if self._stopping and isinstance(outcome, ops.Abandoned) and active.stop is None:
                self._leases.hand_back(active, self.clock.now())  # stopped for the shutdown
                return
            active.ending = True
            await writer.outcome(outcome, stop=active.stop)
            if isinstance(outcome, ops.Suspended) and outcome.at is not None:
                self._pacer.suspended(run.id, outcome.at, self.clock.now())
        except LeaseLostError:
            if not active.lost:
                metrics.lease_lost()
            log.info("run %s: lease lost; another worker has it", run.id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run %s: could not save its outcome; it will be retried", run.id)
        finally:
            if active.timer is not None:
                active.timer.cancel()
            # the invocation holds the writer's checkpoint and closures over `active`:
            # without these two links the whole run's objects are freed at once, not
            # left to the cyclic collector, whose full passes stall the loop for tens of
            # milliseconds with thousands of runs a second
            active.invocation = None
            writer.take_logs = list
            self._active.pop(run.id, None)
            self._pacer.finished()
            self._wake.set()

    def _alone(self) -> bool:
        """One run in flight and nothing to claim: its checkpoints need no group commit."""
        return len(self._active) == 1 and len(self._runs) == 1
