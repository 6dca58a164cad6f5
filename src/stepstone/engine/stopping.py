"""Stopping a worker's runs in flight: one at a time (a cancel, asked from any thread or,
through the store, any process; the function's `timeouts`), or all of them as the worker
stops. A run stops at its next step: a step already running finishes and is saved, unless
the stop's grace ends first."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .. import ops
from ..clock import Clock
from ..options import TimeoutLimits
from ..store import Claim
from .leases import ActiveRun, LeaseKeeper
from .persist import RunWriter

log = logging.getLogger("stepstone.worker")


class RunStops:
    """Stops a worker's runs; `active` and `runs` (their tasks) are the worker's own."""

    def __init__(
        self,
        worker_id: str,
        clock: Clock,
        active: dict[str, ActiveRun],
        runs: set[asyncio.Task[None]],
    ) -> None:
        self.worker_id = worker_id
        self.clock = clock
        self._active = active
        self._runs = runs
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The worker's event loop, known once it starts: runs are stopped on it."""
        self._loop = loop

    def cancel(self, run_id: str, reason: ops.Stop = ops.CANCELLED) -> None:
        """Stop the run at its next step (from any thread: on the worker's loop)."""
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

    def arm_timeouts(
        self, claim: Claim, limits: TimeoutLimits, active: ActiveRun, writer: RunWriter
    ) -> None:
        """The run's `timeouts`: a run that started too late stops now; one that may
        still finish in time gets a timer that stops it when its time is up."""
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

    async def wind_down(self, grace: float, abort: asyncio.Event, leases: LeaseKeeper) -> None:
        """Runs claimed ahead go back at once; the others stop at their next step, and
        those still in a step when the grace ends are dropped and go back as they are."""
        if not self._active:
            return
        log.info(
            "worker %s stopping: %d runs in flight, %gs grace",
            self.worker_id,
            len(self._active),
            grace,
        )
        for active in list(self._active.values()):
            if active.held is not None:
                leases.hand_back(active, active.held)
                if active.task is not None:
                    active.task.cancel()
            elif active.invocation is not None:
                active.invocation.stop("the worker is shutting down")
        aborted = asyncio.create_task(abort.wait())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
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
            leases.hand_back(active, now)
        pending = list(self._runs)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
