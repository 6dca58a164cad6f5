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
from .common import Sizes, latency_summary, rss_bytes, throughput

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
    app: stepstone.App, function_id: str, steps: int, returned: Callable[[], None] = lambda: None
) -> None:
    """The function every throughput workload runs: `steps` trivial steps in sequence
    (`data.steps` overrides), then `returned()`."""

    @app.function(id=function_id, trigger=f"bench/{function_id}")
    async def run(ctx: stepstone.Context) -> int:
        count = int(ctx.event.data.get("steps", steps))
        for i in range(count):
            await ctx.step.run(f"s{i}", _noop, i)
        returned()
        return count


async def _timed_runs(url: str, function_id: str, runs: int, steps: int, concurrency: int) -> float:
    """Seconds from sending `runs` runs of the step loop to all of them completed."""
    app = stepstone.App("bench", database=url)
    tally = _Returned()
    define_step_loop(app, function_id, steps, tally.returned)
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


async def sequential(url: str, steps: int, paired_floor: bool = False) -> dict[str, Any]:
    """One run of `steps` trivial steps: send -> every step durable and the run completed.

    paired_floor: measure the floor just before and after, on the same database (SQLite:
    a file beside it; PostgreSQL: a table in it)."""
    if paired_floor:
        before = _floor_beside(url, steps, 1)
    seconds = await _timed_runs(url, "sequential", 1, steps, concurrency=100)
    out: dict[str, Any] = {
        "steps_per_s": steps / seconds,
        "us_per_step": seconds / steps * 1e6,
        "seconds": seconds,
        "steps": steps,
    }
    if paired_floor:
        # the floor right before and right after, on the same disk a moment apart: the
        # disk's speed drifts by 2x over minutes on a shared machine
        floors = [before, _floor_beside(url, steps, 2)]
        out["floor_paired_steps_per_s"] = statistics.mean(floors)
        out["vs_floor_paired"] = out["steps_per_s"] / out["floor_paired_steps_per_s"]
    return out


def _floor_beside(url: str, steps: int, n: int) -> float:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        return float(floor.sqlite_sequential(f"{path}.floor-{n}", steps)["steps_per_s"])
    return float(floor.postgres_sequential(url, steps)["steps_per_s"])


async def concurrent(url: str, runs: int, steps: int, concurrency: int = 100) -> dict[str, Any]:
    """`runs` runs of `steps` steps, sent in one call; until all are completed."""
    seconds = await _timed_runs(url, "concurrent", runs, steps, concurrency)
    return {**throughput(runs, steps, seconds), "worker_concurrency": concurrency}


async def concurrent_processes(
    url: str, runs: int, steps: int, processes: int, concurrency: int = 100
) -> dict[str, Any]:
    """The concurrent workload served by `processes` worker processes (bench/workers.py):
    PostgreSQL scales out by processes. Sent from this process, which runs no worker."""
    app = stepstone.App("bench", database=url)
    define_step_loop(app, "concurrent", steps)  # planned here, run by the worker processes

    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.workers",
            url,
            str(concurrency),
            str(steps),
            stdout=asyncio.subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    try:
        for proc in workers:
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            if line.strip() != b"READY":
                raise RuntimeError(f"a worker process did not start: {line!r}")
        await app.send([{"name": "bench/concurrent", "data": {"steps": 5}}] * processes)
        await _wait_all_ended(app)  # warm: every process has run something
        start = time.perf_counter()
        await _send_many(app, "bench/concurrent", runs)
        await _wait_all_ended(app)
        seconds = time.perf_counter() - start
        failed = await app.list_runs(status="failed", limit=1)
        last = await app.list_runs(status="completed", limit=1)
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            await proc.wait()
        await app.close()
    if failed:
        raise RuntimeError(f"run {failed[0].id} failed: {failed[0].error}")
    if not last or last[0].output != steps:  # the workers ran the steps asked for
        raise RuntimeError(f"a run returned {last[0].output if last else None}")
    return {
        **throughput(runs, steps, seconds),
        "worker_processes": processes,
        "worker_concurrency": concurrency,
    }


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


async def intake(url: str, max_events: int, max_time: float) -> dict[str, Any]:
    """Events/s through POST /e/{key} on the dev server (uvicorn in another process).

    The client is a minimal keep-alive HTTP/1.1 client on asyncio streams: a general
    client library would be the bottleneck on loopback, not the server.
    """
    from .common import free_port

    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.serve", url, str(port), stdout=subprocess.DEVNULL
    )
    out: dict[str, Any] = {}
    try:
        for _ in range(400):
            try:
                status, _body = await _http_once(port, "GET", "/health", b"")
                if status == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.05)
        for label, per_request in (("single", 1), ("batched_100", 100)):
            out[label] = await _post_events(port, per_request, max_events, max_time)
        out["keepalive"] = await _keepalive_requests(port, max_events, max_time)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)
    return out


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _http_once(port: int, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    conn = await _Connection.open(port)
    try:
        return await conn.request(method, path, body)
    finally:
        conn.close()


async def _post_events(
    port: int, per_request: int, max_events: int, max_time: float, clients: int = 16
) -> dict[str, float]:
    sent = 0
    requests = 0
    start = time.perf_counter()

    async def one_client() -> None:
        nonlocal sent, requests
        conn = await _Connection.open(port)
        try:
            while sent < max_events and time.perf_counter() - start < max_time:
                sent += per_request
                requests += 1
                body: Any = [
                    {"name": "bench/intake", "data": {"n": sent + i}} for i in range(per_request)
                ]
                if per_request == 1:
                    body = body[0]
                status, answer = await conn.request("POST", "/e/bench", json.dumps(body).encode())
                if status != 200:
                    raise RuntimeError(f"POST /e/bench answered {status}: {answer[:200]!r}")
        finally:
            conn.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    seconds = time.perf_counter() - start
    return {
        "events_per_s": sent / seconds,
        "requests_per_s": requests / seconds,
        "events": float(sent),
        "events_per_request": float(per_request),
        "clients": float(clients),
    }


async def _keepalive_requests(port: int, max_events: int, max_time: float) -> dict[str, Any]:
    """One client sending one event per request over one connection, as an SDK or a load
    balancer does: each request's time, the first one apart (it opens the connection)."""
    conn = await _Connection.open(port)
    took = []
    start = time.perf_counter()
    try:
        while len(took) < min(max_events, 2000) and time.perf_counter() - start < max_time:
            body = json.dumps({"name": "bench/intake", "data": {"n": len(took)}}).encode()
            sent = time.perf_counter()
            status, answer = await conn.request("POST", "/e/bench", body)
            took.append(time.perf_counter() - sent)
            if status != 200:
                raise RuntimeError(f"POST /e/bench answered {status}: {answer[:200]!r}")
    finally:
        conn.close()
    return {
        **latency_summary(took[1:]),
        "events_per_s": len(took) / (time.perf_counter() - start),
    }


def intake_app(url: str) -> stepstone.App:
    """The app the intake server runs: one function per event, and no worker."""
    app = stepstone.App("bench", database=url)

    @app.function(id="intake", trigger="bench/intake")
    async def run(ctx: stepstone.Context) -> None:
        return None

    return app


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
    url = fresh(name)
    if name == "sequential":
        return await sequential(url, sizes.sequential_steps, sizes.paired_floor)
    if name == "concurrent":
        return await concurrent(url, sizes.concurrent_runs, sizes.concurrent_steps)
    if name == "concurrent_procs":
        return await concurrent_processes(
            url, sizes.concurrent_runs, sizes.concurrent_steps, sizes.worker_processes
        )
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
        return await sleepers(url, sizes.sleepers)
    if name == "waits":
        return await waits(
            url,
            fresh("waits_baseline"),
            sizes.waiters,
            sizes.wait_events,
            sizes.wait_matches,
            sizes.wait_time,
        )
    if name == "intake":
        return await intake(url, sizes.intake_events, sizes.intake_time)
    raise ValueError(f"unknown workload {name!r}")
