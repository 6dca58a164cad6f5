"""The workloads on stepstone: each builds its own App on a fresh database."""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import stepstone

from . import floor
from .common import Sizes, latency_summary, throughput

Fresh = Callable[[str], str]  # workload name -> a fresh database URL


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def _noop(i: int) -> int:
    return i


class _Returned:
    """Counts function bodies that returned; a future fires when `expected` have."""

    def __init__(self) -> None:
        self.count = 0
        self.expected = 0
        self.future: asyncio.Future[None] | None = None

    def arm(self, expected: int) -> asyncio.Future[None]:
        self.count, self.expected = 0, expected
        self.future = asyncio.get_running_loop().create_future()
        return self.future

    def returned(self) -> None:
        self.count += 1
        if self.future is not None and self.count >= self.expected and not self.future.done():
            self.future.set_result(None)


async def _wait_completed(app: stepstone.App, returned: asyncio.Future[None]) -> None:
    """Until every run is recorded completed (its last write durable).

    Waits for the function bodies to return first (no polling meanwhile, so the
    harness takes no CPU from the worker), then polls until no run is left unfinished.
    """
    await asyncio.wait_for(returned, timeout=600)
    await _wait_all_ended(app, every=0.001)


async def _warm_up(app: stepstone.App, name: str) -> None:
    """One short run first, as every system gets: imports, caches and the file are warm."""
    [event_id] = await app.send({"name": name, "data": {"steps": 5}})
    [run] = await app.runs_for_event(event_id)
    await app.wait_for_run(run.id, timeout=60)


def define_step_loop(
    app: stepstone.App,
    function_id: str,
    steps: int,
    returned: Callable[[], None] = lambda: None,
    handler: Callable[[int], Any] = _noop,
) -> None:
    """The function every throughput workload runs: `steps` trivial steps in sequence
    (`data.steps` overrides), then `returned()`. Each step is `handler(i)`."""

    @app.function(id=function_id, trigger=f"bench/{function_id}")
    async def run(ctx: stepstone.Context) -> int:
        count = int(ctx.event.data.get("steps", steps))
        for i in range(count):
            await ctx.step.run(f"s{i}", handler, i)
        returned()
        return count


Define = Callable[[stepstone.App, str, int, Callable[[], None]], None]


async def _timed_runs(
    url: str,
    function_id: str,
    runs: int,
    steps: int,
    concurrency: int,
    define: Define = define_step_loop,
) -> float:
    """Seconds from sending `runs` runs of the step loop (as `define` writes it) to all of
    them completed."""
    app = stepstone.App("bench", database=url)
    tally = _Returned()
    define(app, function_id, steps, tally.returned)
    try:
        async with app.worker(concurrency=concurrency):
            await _warm_up(app, f"bench/{function_id}")
            returned = tally.arm(runs)
            start = time.perf_counter()
            await _send_many(app, f"bench/{function_id}", runs)
            await _wait_completed(app, returned)
            return time.perf_counter() - start
    finally:
        await app.close()


async def sequential(
    url: str,
    steps: int,
    paired_floor: bool = False,
    define: Define = define_step_loop,
    floor_output: str | None = None,
) -> dict[str, Any]:
    """One run of `steps` trivial steps: send -> every step durable and the run completed.

    paired_floor: measure the floor just before and after, on the same database (SQLite:
    a file beside it; PostgreSQL: a table in it), each step writing `floor_output`."""
    if paired_floor:
        before = floor_beside(url, steps, 1, floor_output)
    seconds = await _timed_runs(url, "sequential", 1, steps, concurrency=100, define=define)
    out: dict[str, Any] = {
        "steps_per_s": steps / seconds,
        "us_per_step": seconds / steps * 1e6,
        "seconds": seconds,
        "steps": steps,
    }
    if paired_floor:
        # the floor right before and right after, on the same disk a moment apart: the
        # disk's speed drifts by 2x over minutes on a shared machine
        floors = [before, floor_beside(url, steps, 2, floor_output)]
        out["floor_paired_steps_per_s"] = statistics.mean(floors)
        out["vs_floor_paired"] = out["steps_per_s"] / out["floor_paired_steps_per_s"]
    return out


def floor_beside(url: str, steps: int, n: int, output: str | None = None) -> float:
    """The floor's steps/s on the disk of `url`: a file beside it, or a table in it."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        return float(floor.sqlite_sequential(f"{path}.floor-{n}", steps, output)["steps_per_s"])
    return float(floor.postgres_sequential(url, steps, output)["steps_per_s"])


async def concurrent(
    url: str, runs: int, steps: int, concurrency: int = 100, define: Define = define_step_loop
) -> dict[str, Any]:
    """`runs` runs of `steps` steps, sent in one call; until all are completed."""
    seconds = await _timed_runs(url, "concurrent", runs, steps, concurrency, define)
    return {**throughput(runs, steps, seconds), "worker_concurrency": concurrency}


async def _send_many(app: stepstone.App, name: str, count: int) -> None:
    for first in range(0, count, 5000):
        await app.send([{"name": name} for _ in range(min(5000, count - first))])


async def _wait_all_ended(app: stepstone.App, every: float = 0.01) -> None:
    """Until no run is queued or running, polled `every` seconds."""
    while True:
        unfinished = 0
        for status in ("queued", "running"):
            unfinished += len(await app.list_runs(status=status, limit=1))
        if not unfinished:
            return
        await asyncio.sleep(every)


LATENCY_STEPS = 5


def _latency_app(url: str) -> tuple[stepstone.App, dict[str, Any]]:
    """A function whose steps record when they start and end (wall clock, so any process)."""
    app = stepstone.App("bench", database=url)
    state: dict[str, Any] = {"first": [], "gaps": [], "done": None, "expected": 0, "seen": 0}

    async def mark(data: dict[str, Any], index: int, previous_end: float | None) -> float:
        t = time.time()
        if index == 0:
            state["first"].append(t - data["t"])  # event sent -> first step running
        elif previous_end is not None:
            state["gaps"].append(t - previous_end)  # a step returned -> the next one running
        return time.time()

    @app.function(id="latency", trigger="bench/latency")
    async def run(ctx: stepstone.Context) -> None:
        data = ctx.event.data
        previous: float | None = None
        for index in range(LATENCY_STEPS):
            previous = await ctx.step.run(f"s{index}", mark, data, index, previous)
        state["seen"] += 1
        done = state["done"]
        if state["seen"] >= state["expected"] and done is not None and not done.done():
            done.set_result(None)

    return app, state


async def latency(url: str, samples: int, gap: float, *, cross_process: bool) -> dict[str, Any]:
    """Event sent -> first step running, and step -> next step, with an idle worker.

    In process, `app.send` wakes the worker at once; from another process the worker
    learns of the event by its own means (poll or cross-process wake-up).
    """
    app, state = _latency_app(url)
    loop = asyncio.get_running_loop()
    state["expected"] = samples
    state["done"] = loop.create_future()
    try:
        async with app.worker():
            await app.send({"name": "bench/warmup"})  # open and migrate before timing
            if cross_process:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.sender",
                    "stepstone",
                    url,
                    str(samples),
                    str(gap),
                    stdout=subprocess.DEVNULL,
                )
                await asyncio.wait_for(state["done"], timeout=60 + samples * (gap + 1))
                await proc.wait()
            else:
                for i in range(samples):
                    await asyncio.sleep(gap * (0.5 + random.random()))
                    state["expected"] = i + 1
                    state["done"] = loop.create_future()
                    await app.send({"name": "bench/latency", "data": {"i": i, "t": time.time()}})
                    await asyncio.wait_for(state["done"], timeout=30)
    finally:
        await app.close()
    return {
        "first_step": latency_summary(state["first"]),
        "step_to_step": latency_summary(state["gaps"]),
        "cross_process": cross_process,
    }


async def send_latency_events(url: str, samples: int, gap: float) -> None:
    """The other process of the cross-process latency workload (run by bench.sender)."""
    app, _state = _latency_app(url)  # the sending app plans runs from its own functions
    try:
        await app.store()
        for i in range(samples):
            await asyncio.sleep(gap * (0.5 + random.random()))
            await app.send({"name": "bench/latency", "data": {"i": i, "t": time.time()}})
    finally:
        await app.close()


async def timers(url: str, runs: int, rate: float | None = None) -> dict[str, Any]:
    """`runs` runs each sleeping 1 s: how late each wakes up. Sent at once (a burst: the
    lateness then measures throughput), or at `rate` runs/s (it measures the timers)."""
    app = stepstone.App("bench", database=url)
    planned: dict[str, float] = {}
    late: list[float] = []
    done = asyncio.get_running_loop().create_future()

    async def woke(run_id: str) -> None:
        late.append(time.time() - planned[run_id])
        if len(late) >= runs and not done.done():
            done.set_result(None)

    @app.function(id="timer", trigger="bench/timer")
    async def run(ctx: stepstone.Context) -> None:
        # the sleep below ends 1 s after now; the replay after waking keeps the first value
        planned.setdefault(ctx.run_id, time.time() + 1.0)
        await ctx.step.sleep("nap", 1)
        await ctx.step.run("woke", woke, ctx.run_id)

    try:
        async with app.worker():
            start = time.perf_counter()
            chunk = 1000 if rate is None else max(1, int(rate / 50))
            for first in range(0, runs, chunk):
                n = min(chunk, runs - first)
                await app.send([{"name": "bench/timer"} for _ in range(n)])
                if rate is not None:
                    await asyncio.sleep(max(0.0, start + (first + n) / rate - time.perf_counter()))
            await asyncio.wait_for(done, timeout=120 + runs / 50)
            seconds = time.perf_counter() - start
    finally:
        await app.close()
    return {
        "lateness": latency_summary(late),
        "runs": runs,
        "sent_per_s": rate or "all at once",
        "seconds": seconds,
    }


async def run_all(fresh: Fresh, sizes: Sizes, workloads: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in workloads:
        try:
            results[name] = await _run_one(fresh, sizes, name)
        except Exception as exc:  # one failed workload must not hide the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
        if os.environ.get("BENCH_VERBOSE"):
            print(name, json.dumps(results[name]), file=sys.stderr)
    return results


async def _run_one(fresh: Fresh, sizes: Sizes, name: str) -> dict[str, Any]:
    from . import intake, parked

    url = fresh(name)
    if name == "sequential":
        return await sequential(url, sizes.sequential_steps, sizes.paired_floor)
    if name == "concurrent":
        return await concurrent(url, sizes.concurrent_runs, sizes.concurrent_steps)
    if name == "concurrent_procs":
        from . import processes

        return await processes.scaling(
            fresh,
            sizes.concurrent_runs,
            sizes.concurrent_steps,
            list(sizes.worker_process_counts),
            sizes.worker_processes,
        )
    if name in NEW_WORKLOADS:
        return await _run_new(fresh, url, sizes, name)
    if name in ("latency", "latency_xproc"):
        return await latency(
            url, sizes.latency_samples, sizes.latency_gap, cross_process=name == "latency_xproc"
        )
    if name == "timers":
        return await timers(url, sizes.timer_runs)
    if name == "timers_paced":
        postgres = url.startswith("postgres")
        rate = sizes.timer_rate_postgres if postgres else sizes.timer_rate
        return await timers(url, sizes.timer_runs, rate=rate)
    if name == "sleepers":
        return await parked.sleepers(url, sizes.sleepers)
    if name == "waits":
        return await parked.waits(
            url,
            fresh("waits_baseline"),
            sizes.waiters,
            sizes.wait_events,
            sizes.wait_matches,
            sizes.wait_time,
        )
    if name == "intake":
        return await intake.intake(url, sizes.intake_events, sizes.intake_time)
    if name == "prune":
        from . import prune

        return await prune.prune_latency(url, sizes.prune_runs, sizes.prune_baseline)
    raise ValueError(f"unknown workload {name!r}")


NEW_WORKLOADS = [
    "sequential_def",
    "concurrent_def",
    "large_sequential",
    "large_concurrent",
    "backlog",
    "dbwork",
]


async def _run_new(fresh: Fresh, url: str, sizes: Sizes, name: str) -> dict[str, Any]:
    """The workloads of issue 21, each in a module of its own."""
    from . import backlog, dbwork, large, plain_def

    if name == "sequential_def":
        return await plain_def.sequential(url, sizes.sequential_steps)
    if name == "concurrent_def":
        return await plain_def.concurrent(url, sizes.concurrent_runs, sizes.concurrent_steps)
    if name == "large_sequential":
        return await large.sequential(url, sizes.large_steps, sizes.large_bytes)
    if name == "large_concurrent":
        return await large.concurrent(
            url, sizes.large_runs, sizes.concurrent_steps, sizes.large_bytes
        )
    if name == "backlog":
        return await backlog.backlog(
            url,
            fresh("backlog_full"),
            sizes.backlog_runs,
            sizes.backlog_queued,
            sizes.backlog_sleeping,
            sizes.backlog_rounds,
        )
    return await dbwork.dbwork("stepstone", url, sizes.concurrent_runs, sizes.concurrent_steps)
