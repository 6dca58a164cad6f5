"""The worker: claims due runs with a lease, executes them, renews leases, fires crons."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from .. import metrics, ops, tracing
from ..errors import ConfigError, LeaseLostError, error_record
from ..events import validate_all
from ..executor import Invocation, InvocationInput
from ..function import FunctionDef
from ..ids import new_id
from ..options import TimeoutLimits
from ..records import Event
from ..runtime import Runtime
from ..store import Claim, Handoff, Lease, Store, redact_url
from .cron import CronScheduler
from .pacing import StartPacer
from .persist import RunWriter
from .pruning import prune_forever
from .remote import RemoteInvocation

log = logging.getLogger("stepstone.worker")
RELEASE_TIMEOUT = 10.0  # seconds a stopping worker gives the database to take its runs back


@dataclass
class _Active:
    lease: Lease
    invocation: Invocation | RemoteInvocation | None = None
    stop: ops.Stop | None = None  # set once the run must stop: cancelled or timed out
    lost: bool = False
    ending: bool = False  # its outcome is being written: its job may be gone any moment
    timer: asyncio.TimerHandle | None = None
    held: float | None = None  # claimed ahead: the time it is due, until it starts
    handed_back: bool = False  # its lease is to be released as the worker stops
    task: asyncio.Task[None] | None = None
    held_until: float = 0.0  # when the lease runs out, as last claimed or renewed


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
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{new_id()[-6:]}"
        if grace < 0:
            raise ConfigError("grace must be 0 seconds or more")
        # on stop, how long the steps running may take to finish and be saved
        self.grace = grace
        self._abort: asyncio.Event | None = None  # set: stop without waiting any more
        self._released: list[tuple[Lease, float]] = []  # runs to hand back on stop
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
        self._active: dict[str, _Active] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._runs: set[asyncio.Task[None]] = set()
        self._step_pool = ThreadPoolExecutor(sync_threads, thread_name_prefix="stepstone-step")
        self._fn_pool = ThreadPoolExecutor(concurrency, thread_name_prefix="stepstone-fn")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: Store | None = None
        self.claimed = 0  # runs claimed by this worker, for tests and stats
        self._http: httpx.AsyncClient | None = None

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
        self._abort = asyncio.Event()
        runtime = self.runtime
        self._store = store = await runtime.store()
        if self._poll_option is None:
            self.poll_interval = store.poll_interval
        if self._claim_ahead_option is None:
            self.claim_ahead = store.claim_ahead
        if self.change_poll > 0:
            self._probe = store.change_probe()
        await runtime.registry.publish(store, self.clock.now())
        runtime.signals.add_waker(self.wake)
        runtime.signals.add_taker(self)
        runtime.signals.add_cancel_listener(self._cancel)
        # wake-ups and cancels from other processes (PostgreSQL: LISTEN/NOTIFY)
        await store.subscribe(self.wake, self._cancel)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="stepstone-claim"),
            asyncio.create_task(self._renew_loop(), name="stepstone-renew"),
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
        signals.remove_cancel_listener(self._cancel)
        if self._store is not None:
            try:
                await self._store.unsubscribe(self.wake)
            except Exception:
                log.exception("worker %s could not unsubscribe from wake-ups", self.id)
        self._wake.set()
        if self._tasks:  # a claim on its way spawns its runs before they are counted
            await asyncio.wait([self._tasks[0]], timeout=self.grace)
        await self._wind_down()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._release()
        if self._loop is not None:
            metrics.worker_running(-1)
        if self._http is not None:
            await self._http.aclose()
        self._step_pool.shutdown(wait=False, cancel_futures=True)
        self._fn_pool.shutdown(wait=False, cancel_futures=True)

    def abort(self) -> None:
        """Cut a stop's grace short (a second SIGTERM): runs still in a step are dropped
        and handed back as they are (their steps run again elsewhere). Before a stop, it
        makes that stop skip its grace."""
        if self._abort is not None:
            self._abort.set()

    async def _wind_down(self) -> None:
        """Runs claimed ahead go back at once; the others stop at their next step, and
        those still in a step when the grace ends are dropped and go back as they are."""
        if not self._active:
            return
        log.info(
            "worker %s stopping: %d runs in flight, %gs grace",
            self.id,
            len(self._active),
            self.grace,
        )
        for active in list(self._active.values()):
            if active.held is not None:
                self._hand_back(active, active.held)
                if active.task is not None:
                    active.task.cancel()
            elif active.invocation is not None:
                active.invocation.stop("the worker is shutting down")
        assert self._abort is not None
        aborted = asyncio.create_task(self._abort.wait())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        try:
            while self._runs and not aborted.done() and loop.time() < deadline:
                await asyncio.wait(
                    [*self._runs, aborted],
                    timeout=deadline - loop.time(),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            aborted.cancel()
        now = self.clock.now()
        for active in list(self._active.values()):
            self._hand_back(active, now)
        pending = list(self._runs)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _hand_back(self, active: _Active, at: float) -> None:
        if not active.lost and not active.handed_back:
            active.handed_back = True
            self._released.append((active.lease, at))

    async def _release(self) -> None:
        leases, self._released = self._released, []
        if not leases or self._store is None:
            return
        try:
            released = await asyncio.wait_for(
                self._store.release(leases, self.clock.now(), self.id), RELEASE_TIMEOUT
            )
        except Exception:
            log.exception("worker %s could not hand its runs back; their leases expire", self.id)
            return
        metrics.released(len(released))
        log.info("worker %s handed %d runs back to the queue", self.id, len(released))

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
                        ahead=self.claim_ahead,
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
                await self._wait_or_change(self._probe, timeout)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _wait_or_change(self, probe: Callable[[], bool], timeout: float) -> None:
        """Until woken, `timeout` passes, or another process commits (the probe says so).

        A timer checks the probe every `change_poll` seconds and sets the wake event: no
        task or future per check, so an idle worker stays cheap."""
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def check() -> None:
            nonlocal handle
            if probe():
                self._wake.set()
            else:
                handle = loop.call_later(self.change_poll, check)

        handle = loop.call_later(self.change_poll, check)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            handle.cancel()

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
        return Handoff(self.id, min(free, 50), frozenset(self.runtime.registry.local), until)

    def accept(self, claims: list[Claim]) -> None:
        """Runs a send leased to this worker (see handoff), as if it had claimed them."""
        for claim in claims:
            self._spawn(claim)

    def _spawn(self, claim: Claim, until: float | None = None) -> None:
        self.claimed += 1
        if claim.lease.fence == 1:
            metrics.run_started(claim.run.function_id)
        active = _Active(claim.lease, stop=ops.CANCELLED if claim.cancel_requested else None)
        # handed off a moment ago (until unknown): a tenth of the lease covers the send
        active.held_until = until or self.clock.now() + self.lease_seconds * 0.9
        if self._stopping:  # leased by a send as this worker stops: straight back
            self._hand_back(active, claim.due or self.clock.now())
            return
        self._active[claim.lease.run_id] = active
        task = active.task = asyncio.create_task(self._execute(claim, active))
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)

    async def _execute(self, claim: Claim, active: _Active) -> None:
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
                self._hand_back(active, self.clock.now())
                return
            fn = self._function_of(run.function_id)
            if fn is not None and fn.timeouts is not None and active.stop is None:
                self._arm_timeouts(claim, fn.timeouts, active, writer)
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
            invocation = self._invocation(claim, fn, writer, active)
            active.invocation = invocation
            writer.take_logs = invocation.take_logs
            if active.stop is not None:
                invocation.stop(str(active.stop))
            outcome = await invocation.execute()
            if active.lost:
                return
            if self._stopping and isinstance(outcome, ops.Abandoned) and active.stop is None:
                self._hand_back(active, self.clock.now())  # stopped for the shutdown
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
            self._active.pop(run.id, None)
            self._pacer.finished()
            self._wake.set()

    def _function_of(self, function_id: str) -> FunctionDef | None:
        """The function a run belongs to: one of this process's, or one an SDK app synced
        (it runs over HTTP from any worker); None when neither knows it."""
        registry = self.runtime.registry
        fn = registry.local.get(function_id)
        if fn is None:
            with contextlib.suppress(ConfigError):
                published = registry.get(function_id)
                fn = published if published.runtime is not None else None
        return fn

    def _invocation(
        self, claim: Claim, fn: FunctionDef, writer: RunWriter, active: _Active
    ) -> Invocation | RemoteInvocation:
        runtime, run = self.runtime, claim.run
        data = InvocationInput(
            function=fn,
            run_id=run.id,
            attempt=run.attempt,
            events=claim.events or [Event(name="stepstone/missing.event")],
            steps=run.steps,
        )
        if fn.runtime is not None:
            return RemoteInvocation(
                data,
                emit=writer.checkpoint,
                clock=self.clock,
                backoff=fn.backoff or runtime.backoff,
                client=self._http_client(),
                signing_key=runtime.signing_key,
                limits=runtime.limits,
                retry_after_min=runtime.retry_after_min,
            )
        return Invocation(
            data,
            emit=writer.checkpoint,
            clock=self.clock,
            limits=runtime.limits,
            backoff=fn.backoff or runtime.backoff,
            sync_pool=self._step_pool,
            function_pool=self._fn_pool,
            retry_after_min=runtime.retry_after_min,
            resolve_function=runtime.registry.resolve,
            new_event_ids=self._event_dicts,
            lease_held=lambda: not active.lost and self.clock.now() < active.held_until,
            renew_lease=lambda: self._renew_one(active),
        )

    def _http_client(self) -> httpx.AsyncClient:
        """One connection pool for this worker's calls to SDK apps (opened on first use)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=None, follow_redirects=False)
        return self._http

    def _arm_timeouts(
        self, claim: Claim, limits: TimeoutLimits, active: _Active, writer: RunWriter
    ) -> None:
        run, now = claim.run, self.clock.now()
        started = run.started_at if run.started_at is not None else now
        if limits.start is not None and started - run.created_at > limits.start:
            active.stop = ops.Stop(
                ops.StopKind.TIMED_OUT, f"not started within timeouts.start={limits.start}s"
            )
            return
        if limits.finish is None:
            return
        deadline = started + limits.finish
        reason = ops.Stop(
            ops.StopKind.TIMED_OUT, f"not finished within timeouts.finish={limits.finish}s"
        )
        if now >= deadline:
            active.stop = reason
            return
        writer.deadline = deadline
        assert self._loop is not None
        active.timer = self._loop.call_later(deadline - now, self._cancel_here, run.id, reason)

    def _alone(self) -> bool:
        """One run in flight and nothing to claim: its checkpoints need no group commit."""
        return len(self._active) == 1 and len(self._runs) == 1

    def _event_dicts(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        # validate and give ids only: the runs they start are planned once, when saved
        return [event.to_dict() for event, _ in validate_all(events, self.runtime.limits)]

    # -- leases ------------------------------------------------------------------------
    async def _renew_loop(self) -> None:
        assert self._store is not None
        # often enough that a cancel asked from another process is seen within seconds
        interval = min(self.lease_seconds / 3, 2.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.runtime.registry.refresh(self._store)
            except Exception:
                log.warning("worker %s could not reload the function registry", self.id)
            if not self._active:
                continue
            leases = [a.lease for a in self._active.values()]
            until = self.clock.now() + self.lease_seconds
            try:
                lost, cancel = await self._store.renew(leases, until)
            except Exception:
                log.exception("worker %s could not renew its leases", self.id)
                continue
            gone = set(lost)
            for lease in leases:
                renewed = self._active.get(lease.run_id)
                if renewed is not None and renewed.lease is lease and lease.run_id not in gone:
                    renewed.held_until = until
            for run_id in lost:
                active = self._active.get(run_id)
                if active is None or active.ending:
                    # it ended while the renewal was on its way (or its outcome finds out,
                    # and says so, if it was taken over)
                    continue
                log.warning("run %s: lease lost; another worker took it over", run_id)
                metrics.lease_lost()
                active.lost = True
                if active.invocation is not None:
                    active.invocation.stop("lease lost")
            for run_id in cancel:
                self._cancel(run_id)

    async def _renew_one(self, active: _Active) -> bool:
        """Renew one lease now (its time ran out by our clock); False if it is lost."""
        assert self._store is not None
        until = self.clock.now() + self.lease_seconds
        try:
            lost, _ = await self._store.renew([active.lease], until)
        except Exception:
            log.warning("run %s: could not renew its lease", active.lease.run_id)
            return False
        if lost:
            active.lost = True
            return False
        active.held_until = until
        return True

    def _cancel(self, run_id: str, reason: ops.Stop = ops.CANCELLED) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._cancel_here, run_id, reason)
                return
        self._cancel_here(run_id, reason)

    def _cancel_here(self, run_id: str, reason: ops.Stop = ops.CANCELLED) -> None:
        active = self._active.get(run_id)
        if active is not None and active.stop is None:
            active.stop = reason
            if active.invocation is not None:
                active.invocation.stop(str(reason))
