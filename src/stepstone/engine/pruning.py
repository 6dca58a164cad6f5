"""Retention: finished runs older than the retention period are deleted with their steps,
history and the events no run needs any more, in small batches, each its own short
transaction, so that checkpoints never wait long behind a prune."""

from __future__ import annotations

import asyncio
import logging
import random

from ..runtime import Runtime
from ..store import Pruned, Store

log = logging.getLogger("stepstone.retention")
BATCH = 500  # runs (and events) per transaction
PAUSE = 0.02  # seconds between two batches: the writers' turn


async def prune(store: Store, before: float, *, batch: int = BATCH) -> Pruned:
    """Delete every finished run that ended before `before`, batch after batch; the
    totals."""
    runs = events = 0
    while True:
        done = await store.prune(before, limit=batch)
        runs, events = runs + done.runs, events + done.events
        if done.runs < batch and done.events < batch:
            return Pruned(runs, events)
        await asyncio.sleep(PAUSE)


async def prune_forever(runtime: Runtime, store: Store, interval: float) -> None:
    """A worker's share of retention: a prune every `interval` seconds (with jitter, so
    that workers started together do not prune together)."""
    while True:
        await asyncio.sleep(interval * random.uniform(0.5, 1.0))
        if runtime.retention <= 0:
            continue
        try:
            done = await prune(store, runtime.clock.now() - runtime.retention)
        except Exception:
            log.exception("retention: could not prune finished runs; trying again later")
            continue
        if done.runs or done.events:
            log.info("retention: pruned %d runs and %d events", done.runs, done.events)
