"""A worker's leases: renewed on a beat while its runs execute (a lease that runs out
is another worker's to take), and handed back when the worker stops, so that another
worker resumes those runs at once instead of when their leases would have run out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .. import metrics, ops
from ..executor import Invocation
from ..runtime import Runtime
from ..store import Lease, Store
from .remote import RemoteInvocation

log = logging.getLogger("stepstone.worker")
RELEASE_TIMEOUT = 10.0  # seconds a stopping worker gives the database to take its runs back


@dataclass
class ActiveRun:
    """A run this worker holds the lease of, and what it is doing with it."""

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


class LeaseKeeper:
    """Keeps the leases of a worker's runs in flight: renews them all on a beat (and one
    at once when its time ran out by our clock), and releases the leases handed back as
    the worker stops."""

    def __init__(
        self,
        runtime: Runtime,
        worker_id: str,
        lease_seconds: float,
        active: dict[str, ActiveRun],
        cancel: Callable[[str], None],
    ) -> None:
        self.runtime = runtime
        self.clock = runtime.clock
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self._active = active  # the worker's own dict of runs in flight, not a copy
        self._cancel = cancel  # a run cancelled from another process stops through it
        self._store: Store | None = None
        self._released: list[tuple[Lease, float]] = []  # runs to hand back on stop

    def attach(self, store: Store) -> None:
        """The worker's store, known once it starts."""
        self._store = store

    async def renew_forever(self) -> None:
        """Renew every lease in flight on a beat; a lost one stops its run."""
        assert self._store is not None
        # often enough that a cancel asked from another process is seen within seconds
        interval = min(self.lease_seconds / 3, 2.0)
        while True:
            await asyncio.sleep(interval)
            try:  # on the same beat: the functions other processes published
                await self.runtime.registry.refresh(self._store)
            except Exception:
                log.warning("worker %s could not reload the function registry", self.worker_id)
            if not self._active:
                continue
            leases = [a.lease for a in self._active.values()]
            until = self.clock.now() + self.lease_seconds
            try:
                lost, cancel = await self._store.renew(leases, until)
            except Exception:
                log.exception("worker %s could not renew its leases", self.worker_id)
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

    async def renew_one(self, active: ActiveRun) -> bool:
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

    def hand_back(self, active: ActiveRun, at: float) -> None:
        """The run goes back to the queue, due `at`, when the worker stops (`release`)."""
        if not active.lost and not active.handed_back:
            active.handed_back = True
            self._released.append((active.lease, at))

    async def release(self) -> None:
        """Hand the runs handed back to the database at once, or leave their leases to
        run out if it does not answer in time."""
        leases, self._released = self._released, []
        if not leases or self._store is None:
            return
        try:
            released = await asyncio.wait_for(
                self._store.release(leases, self.clock.now(), self.worker_id), RELEASE_TIMEOUT
            )
        except Exception:
            log.exception(
                "worker %s could not hand its runs back; their leases expire", self.worker_id
            )
            return
        metrics.released(len(released))
        log.info("worker %s handed %d runs back to the queue", self.worker_id, len(released))
