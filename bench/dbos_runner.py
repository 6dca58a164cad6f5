"""The workloads 1-3 on DBOS Transact: @DBOS.workflow calling @DBOS.step functions.

DBOS keeps global state, so each cell runs it in a process of its own. On SQLite the
file is switched to WAL before launch (DBOS leaves SQLite's default rollback journal),
so both systems run with journal_mode=WAL and synchronous=FULL (SQLite's default).
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

from .common import Sizes, latency_summary, throughput

LATENCY_STEPS = 5
QUEUE = "bench_latency"


def _prepare_sqlite(url: str) -> dict[str, Any]:
    path = url[len("sqlite:///") :]
    conn = sqlite3.connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        conn.close()
    return {"journal_mode": mode, "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL"}.get(sync, sync)}


class DbosBench:
    """One launched DBOS with the benchmark's workflows registered."""

    def __init__(self, url: str, *, queue: bool = True) -> None:
        """queue: register the cross-process latency workload's queue (polled every 1 s)."""
        from dbos import DBOS

        self.settings = _prepare_sqlite(url) if url.startswith("sqlite") else {}
        self.url = url
        self.first: list[float] = []
        self.gaps: list[float] = []
        self.seen = 0
        self.cond = threading.Condition()
        DBOS(config={"name": "bench", "system_database_url": url, "log_level": "WARNING"})

        @DBOS.step()
        def noop(i: int) -> int:
            return i

        @DBOS.workflow(name="bench_steps")
        def steps_workflow(n: int) -> int:
            for i in range(n):
                noop(i)
            return n

        @DBOS.step()
        def mark(sent: float, index: int, previous_end: float | None) -> float:
            t = time.time()
            if index == 0:
                self.first.append(t - sent)
            elif previous_end is not None:
                self.gaps.append(t - previous_end)
            return time.time()

        @DBOS.workflow(name="bench_latency")
        def latency_workflow(i: int, sent: float) -> None:
            previous: float | None = None
            for index in range(LATENCY_STEPS):
                previous = mark(sent, index, previous)
            with self.cond:
                self.seen += 1
                self.cond.notify_all()

        self.steps_workflow = steps_workflow
        self.latency_workflow = latency_workflow
        DBOS.launch()
        if queue:
            DBOS.register_queue(QUEUE)  # the default polling interval (1 s)
        DBOS.start_workflow(self.steps_workflow, 5).get_result()  # warm up, as every system

    def close(self) -> None:
        from dbos import DBOS

        DBOS.destroy(destroy_registry=True)

    def sequential(self, steps: int) -> dict[str, Any]:
        from dbos import DBOS

        start = time.perf_counter()
        DBOS.start_workflow(self.steps_workflow, steps).get_result()
        seconds = time.perf_counter() - start
        return {
            "steps_per_s": steps / seconds,
            "us_per_step": seconds / steps * 1e6,
            "seconds": seconds,
            "steps": steps,
        }

    def concurrent(self, runs: int, steps: int) -> dict[str, Any]:
        from dbos import DBOS

        start = time.perf_counter()
        handles = [DBOS.start_workflow(self.steps_workflow, steps) for _ in range(runs)]
        for handle in handles:
            handle.get_result()
        return throughput(runs, steps, time.perf_counter() - start)

    def latency(self, samples: int, gap: float, *, cross_process: bool) -> dict[str, Any]:
        from dbos import DBOS

        self.first.clear()
        self.gaps.clear()
        self.seen = 0
        if cross_process:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.sender", "dbos", self.url, str(samples), str(gap)],
                stdout=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60 + samples * (gap + 2)
            with self.cond:
                while self.seen < samples and time.monotonic() < deadline:
                    self.cond.wait(0.5)
            proc.wait(timeout=60)
        else:
            for i in range(samples):
                time.sleep(gap * (0.5 + random.random()))
                DBOS.start_workflow(self.latency_workflow, i, time.time()).get_result()
        return {
            "first_step": latency_summary(self.first),
            "step_to_step": latency_summary(self.gaps),
            "cross_process": cross_process,
            "note": "cross-process: DBOSClient.enqueue onto a queue polled every 1 s (default)"
            if cross_process
            else "DBOS.start_workflow in the worker's process",
        }


def send_latency_events(url: str, samples: int, gap: float) -> None:
    """The other process of the cross-process latency workload: enqueue with DBOSClient."""
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=url)
    try:
        for i in range(samples):
            time.sleep(gap * (0.5 + random.random()))
            client.enqueue({"queue_name": QUEUE, "workflow_name": "bench_latency"}, i, time.time())
    finally:
        client.destroy()


def run_all(url: str, sizes: Sizes, workloads: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "dbwork" in workloads:  # its own launches of DBOS, counted (bench/dbwork.py)
        from . import dbwork

        try:
            results["dbwork"] = dbwork.count(
                "dbos", url, sizes.concurrent_runs, sizes.concurrent_steps
            )
        except Exception as exc:  # one failed workload must not hide the others
            results["dbwork"] = {"error": f"{type(exc).__name__}: {exc}"}
        workloads = [w for w in workloads if w != "dbwork"]
        if not workloads:
            return results
    bench = DbosBench(url)
    results["settings"] = bench.settings
    try:
        for name in workloads:
            if name == "sequential":
                results[name] = bench.sequential(sizes.sequential_steps)
            elif name == "concurrent":
                results[name] = bench.concurrent(sizes.concurrent_runs, sizes.concurrent_steps)
            elif name == "latency":
                results[name] = bench.latency(
                    sizes.latency_samples, sizes.latency_gap, cross_process=False
                )
            elif name == "latency_xproc":
                results[name] = bench.latency(
                    sizes.latency_samples, sizes.latency_gap, cross_process=True
                )
    finally:
        bench.close()
    return results
