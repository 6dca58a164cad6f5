"""Workload 2 served by worker processes (bench/workers.py) on one PostgreSQL database:
PostgreSQL deployments scale out by processes. For 1, 2 and 4 processes (Sizes.
worker_process_counts), each on a fresh database: steps/s, and the CPU time the database
server, the worker processes and the sending process (this one, which runs no worker)
spent during the timed part, beside the machine's core count.

The server's CPU time is read from /proc for the postmaster and every process it started
(backends, WAL writer, checkpointer, autovacuum), plus what the postmaster has collected
from children that exited meanwhile: before and after, the difference. Linux only; the
figures are left out where there is no /proc. Their resolution is the clock tick (10 ms)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import stepstone

from .common import throughput
from .cpu import ServerCpu, cpu_seconds
from .stepstone_runner import ROOT, _send_many, _wait_all_ended, define_step_loop


async def served(
    url: str, runs: int, steps: int, processes: int, concurrency: int
) -> dict[str, Any]:
    """`runs` runs of `steps` steps sent from here, served by `processes` worker processes."""
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
    server = ServerCpu(url) if url.startswith("postgres") else None
    try:
        for proc in workers:
            assert proc.stdout is not None
            line = await proc.stdout.readline()
            if line.strip() != b"READY":
                raise RuntimeError(f"a worker process did not start: {line!r}")
        await app.send([{"name": "bench/concurrent", "data": {"steps": 5}}] * processes)
        await _wait_all_ended(app)  # warm: every process has run something
        cpu_before = _cpu_now(server, workers)
        start = time.perf_counter()
        await _send_many(app, "bench/concurrent", runs)
        await _wait_all_ended(app)
        seconds = time.perf_counter() - start
        cpu_after = _cpu_now(server, workers)
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
    used = {k: cpu_after[k] - cpu_before[k] for k in cpu_after if cpu_after[k] is not None}
    total = runs * steps
    return {
        **throughput(runs, steps, seconds),
        "worker_processes": processes,
        "worker_concurrency": concurrency,
        "cpu_s": used,
        "cores_busy": {k: v / seconds for k, v in used.items()},
        "cpu_us_per_step": {k: v / total * 1e6 for k, v in used.items()},
    }


def _cpu_now(server: ServerCpu | None, workers: list[Any]) -> dict[str, Any]:
    return {
        "database": server.seconds() if server else None,
        "workers": sum(cpu_seconds(proc.pid) for proc in workers),
        "sender": time.process_time(),
    }


async def scaling(
    fresh: Callable[[str], str],
    runs: int,
    steps: int,
    counts: list[int],
    default: int,
    concurrency: int = 100,
) -> dict[str, Any]:
    """The workload on each count of worker processes, each on a fresh database; the
    result of `default` processes at the top (as before), every count's under its own."""
    by: dict[str, Any] = {}
    for n in sorted({*counts, default}):
        by[str(n)] = await served(fresh(f"procs{n}"), runs, steps, n, concurrency)
    return {**by[str(default)], "by_processes": by, "cpus": os.cpu_count()}
