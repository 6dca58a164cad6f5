"""Shared helpers: percentiles, medians, clocks, free ports, sizes of each mode."""

from __future__ import annotations

import math
import os
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; `quick` keeps the whole run to a few minutes."""

    sequential_steps: int = 1000
    concurrent_runs: int = 1000
    concurrent_steps: int = 10
    latency_samples: int = 200
    latency_gap: float = 0.02  # idle time between two latency probes, seconds
    timer_runs: int = 10_000
    timer_rate: float = 500.0  # runs/s sent in the paced variant
    # PostgreSQL: one worker process serves about 400 timer runs/s (each is claimed twice),
    # so the paced rate stays below that: it then measures the timers, not a backlog
    timer_rate_postgres: float = 250.0
    worker_processes: int = 2  # the concurrent workload again, over this many workers
    worker_process_counts: tuple[int, ...] = (1, 2, 4)  # and over each of these, with DB CPU
    sleepers: int = 100_000
    waiters: int = 100_000
    wait_events: int = 4000  # non-matching events per measurement
    wait_matches: int = 200  # matching events (bounded by wait_time)
    wait_time: float = 20.0
    intake_events: int = 20_000
    intake_time: float = 8.0
    repetitions: int = 3
    paired_floor: bool = True  # measure the floor beside stepstone's sequential run
    # workload 7: the 10-step function (concurrent_steps) native and in SDK apps
    sdk_runs: int = 1000
    sdk_latency_samples: int = 100
    http_samples: int = 2000  # HTTP round trips to a trivial app, per client
    # large outputs: steps returning this many bytes of JSON; one run of large_steps steps
    # (a run's state is capped at 32 MiB), and large_runs runs of concurrent_steps steps
    large_bytes: int = 100 * 1024
    large_steps: int = 200
    large_runs: int = 100
    # backlog: the rate a worker drains backlog_runs runs, in an empty database and with
    # backlog_queued runs queued and backlog_sleeping sleeping far ahead (bench/backlog.py)
    backlog_runs: int = 1000
    backlog_queued: int = 1_000_000
    backlog_sleeping: int = 100_000
    backlog_rounds: int = 5  # alternating drains of each database; medians
    # prune: checkpoint latency alone for prune_baseline seconds, then while prune_runs
    # finished runs are pruned (bench/prune.py)
    prune_runs: int = 50_000
    prune_baseline: float = 5.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = Sizes()
QUICK = Sizes(
    sequential_steps=300,
    concurrent_runs=200,
    latency_samples=40,
    timer_runs=500,
    timer_rate=250.0,
    timer_rate_postgres=125.0,
    sleepers=3000,
    waiters=2000,
    wait_events=300,
    wait_matches=50,
    wait_time=5.0,
    intake_events=2000,
    intake_time=2.0,
    sdk_runs=50,
    sdk_latency_samples=10,
    http_samples=300,
    large_steps=50,
    large_runs=20,
    backlog_queued=100_000,
    backlog_sleeping=10_000,
    prune_runs=5000,
    prune_baseline=1.0,
    repetitions=2,
)
TINY = Sizes(
    sequential_steps=20,
    concurrent_runs=10,
    concurrent_steps=3,
    latency_samples=5,
    latency_gap=0.005,
    timer_runs=10,
    sleepers=50,
    waiters=50,
    wait_events=20,
    wait_matches=5,
    wait_time=2.0,
    intake_events=50,
    intake_time=1.0,
    sdk_runs=5,
    sdk_latency_samples=3,
    http_samples=20,
    worker_process_counts=(1, 2),
    large_steps=3,
    large_runs=2,
    backlog_runs=20,
    backlog_queued=200,
    backlog_sleeping=50,
    backlog_rounds=1,
    prune_runs=200,
    prune_baseline=0.3,
    repetitions=1,
)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
        "n": len(ms),
    }


def throughput(runs: int, steps: int, seconds: float) -> dict[str, Any]:
    """The concurrent workload's figures, as every system reports them."""
    return {
        "steps_per_s": runs * steps / seconds,
        "runs_per_s": runs / seconds,
        "seconds": seconds,
        "runs": runs,
        "steps_per_run": steps,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process, from /proc (psutil when /proc is missing)."""
    pid = pid or os.getpid()
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def now() -> float:
    return time.perf_counter()
