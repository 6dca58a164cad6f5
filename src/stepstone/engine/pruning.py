"""Retention: finished runs older than the retention period are deleted with their steps,
history and the events no run needs any more, in small batches, each its own short
transaction, so that checkpoints never wait long behind a prune (bench/prune.py measures
it: bench/FINDINGS.md, "Checkpoint latency during a prune")."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from ..runtime import Runtime
from ..store import Pruned, Store

log = logging.getLogger("stepstone.retention")
BATCH = 500  # runs (and events) per transaction, at most
FIRST = 10  # the first batch (of runs of unknown size): each next one is sized by the last
PAUSE = 0.01  # seconds between two batches at least: the writers' turn


def next_size(size: int, took: float, *, most: int, budget: float) -> int:
    """The next batch's size, from how long the statements of a batch of `size` held the
    database: scaled to the budget, within 1 and `most`, and at most doubled at a time (a
    small batch's time is mostly fixed costs, which do not grow with it). Runs of many
    steps make slow batches, and so does a loaded database: either way they shrink."""
    factor = 2.0 if took <= 0 else min(2.0, budget / took)
    return max(1, min(most, int(size * factor)))


async def prune(store: Store, before: float, *, batch: int = BATCH) -> Pruned:
    """Delete every finished run that ended before `before`, batch after batch, each
    sized so that its statements hold the database for about the store's `prune_budget`
    (a checkpoint behind it waits that long and a commit, at most; bench/prune.py
    measures it), and at most `batch` runs; the totals."""
    runs = events = 0
    held = 0.0
    size = min(FIRST, batch)
    while True:
        began = time.perf_counter()
        done = await store.prune(before, limit=size)
        took = time.perf_counter() - began
        runs, events, held = runs + done.runs, events + done.events, held + done.seconds
        if done.runs < size and done.events < size:
            return Pruned(runs, events, held)
        size = next_size(size, done.seconds, most=batch, budget=store.prune_budget)
        # the writers get at least as long as the batch took, its commit and any wait
        # for the database included: a slow one is not followed by another at once
        await asyncio.sleep(max(PAUSE, took))


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
