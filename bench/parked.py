"""Workloads 4 (memory with many sleeping runs) and 5 (events/s with many runs waiting):
runs parked by the hundred thousand, on stepstone."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

import stepstone

from .common import rss_bytes


async def _count_live(app: stepstone.App) -> int:
    """Runs not yet parked: queued or running (one page is enough to know 'some')."""
    live = 0
    for status in ("queued", "running"):
        live += len(await app.list_runs(status=status, limit=1000))
    return live


async def _park(
    app: stepstone.App, name: str, total: int, checkpoints: list[int]
) -> list[dict[str, float]]:
    """Send `total` events in batches; at each checkpoint, wait until every run is parked and
    record the worker's RSS."""
    memory = []
    sent = 0
    for target in checkpoints:
        while sent < target:
            n = min(1000, target - sent)
            await app.send([{"name": name, "data": {"k": sent + i}} for i in range(n)])
            sent += n
        while await _count_live(app):
            await asyncio.sleep(0.05)
        memory.append({"runs": float(target), "rss_mb": rss_bytes() / 2**20})
    return memory


def _checkpoints(total: int) -> list[int]:
    marks = sorted({max(1, total // 100), max(1, total // 10), max(1, total // 2), total})
    return marks


async def sleepers(url: str, total: int) -> dict[str, Any]:
    """The worker's RSS as sleeping runs pile up (each sleeps one hour)."""
    app = _sleepers_app(url)
    try:
        async with app.worker(concurrency=500):
            start = time.perf_counter()
            memory = await _park(app, "bench/sleeper", total, _checkpoints(total))
            seconds = time.perf_counter() - start
    finally:
        await app.close()
    first, last = memory[0], memory[-1]
    return {
        "rss": memory,
        "growth_mb": last["rss_mb"] - first["rss_mb"],
        "growth_kb_per_1k_runs": (last["rss_mb"] - first["rss_mb"])
        * 1024
        / max(1.0, (last["runs"] - first["runs"]) / 1000),
        "sleepers": total,
        "setup_s": seconds,
    }


def _sleepers_app(url: str) -> stepstone.App:
    app = stepstone.App("bench", database=url)

    @app.function(id="sleeper", trigger="bench/sleeper")
    async def run(ctx: stepstone.Context) -> None:
        await ctx.step.sleep("nap", "1h")

    return app


async def _send_rate(app: stepstone.App, events: list[dict[str, Any]], senders: int) -> float:
    """Events/s with `senders` concurrent callers each sending one event per app.send."""
    queue = list(reversed(events))

    async def sender() -> None:
        while queue:
            await app.send(queue.pop())

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return len(events) / (time.perf_counter() - start)


async def _median_rate(app: stepstone.App, events: list[dict[str, Any]]) -> float:
    return statistics.median([await _send_rate(app, events, 16) for _ in range(3)])


WAIT_ROUNDS = 7  # alternating rounds of non-matching events, each database


async def waits(
    url: str, baseline_url: str, total: int, events: int, matches: int, time_cap: float
) -> dict[str, Any]:
    """Events/s that no wait listens for: `total` runs waiting vs as many sleeping in
    another database (`baseline_url`: same size, no wait), measured alternately so drift
    hits both; then matching events, each resuming one of the waiting runs."""
    app = stepstone.App("bench", database=url)

    @app.function(id="waiter", trigger="bench/waiter")
    async def run(ctx: stepstone.Context) -> None:
        await ctx.step.wait_for_event(
            "w", event="x/y", timeout="1h", if_="event.data.k == async.data.k"
        )

    baseline = _sleepers_app(baseline_url)
    nonmatching = [{"name": "bench/nobody-waits", "data": {"k": i}} for i in range(events)]
    try:
        empty_rate = 0.0
        async with app.worker(concurrency=500):
            await _send_rate(app, nonmatching[: len(nonmatching) // 2], 16)  # warm up
            empty_rate = await _send_rate(app, nonmatching, 16)
            start = time.perf_counter()
            await _park(app, "bench/waiter", total, [total])
            setup = time.perf_counter() - start
        async with baseline.worker(concurrency=500):
            await _park(baseline, "bench/sleeper", total, [total])
        with_waits: list[float] = []
        without: list[float] = []
        await _send_rate(baseline, nonmatching[: len(nonmatching) // 2], 16)  # warm up
        await _send_rate(app, nonmatching[: len(nonmatching) // 2], 16)
        for _ in range(WAIT_ROUNDS):  # the medians of both are compared
            without.append(await _send_rate(baseline, nonmatching, 16))
            with_waits.append(await _send_rate(app, nonmatching, 16))
        async with app.worker(concurrency=500):
            # matching: each event resumes exactly one waiting run; bounded by time
            keys = random.sample(range(total), min(matches, total))
            sent = 0
            start = time.perf_counter()
            for k in keys:
                await app.send({"name": "x/y", "data": {"k": k}})
                sent += 1
                if time.perf_counter() - start > time_cap:
                    break
            match_rate = sent / (time.perf_counter() - start)
    finally:
        await app.close()
        await baseline.close()
    return {
        "nonmatching_events_per_s_empty_db": empty_rate,
        "nonmatching_events_per_s_no_waits": statistics.median(without),
        "nonmatching_events_per_s_with_waits": statistics.median(with_waits),
        "nonmatching_rates_no_waits": without,
        "nonmatching_rates_with_waits": with_waits,
        "matching_events_per_s": match_rate,
        "matching_events_sent": sent,
        "waiting_runs": total,
        "setup_s": setup,
        "senders": 16,
    }
