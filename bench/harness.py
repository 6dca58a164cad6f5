"""Runs every system side by side, in one run on one machine: cells in their own processes,
interleaved repetition by repetition so that drift of the disk hits all systems alike."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from .cell import MARK
from .common import Sizes

CORE = ["sequential", "concurrent", "latency", "latency_xproc"]
REPEATED_EXTRA = ["timers", "timers_paced", "intake"]
ONCE_EXTRA = ["sleepers", "waits"]  # 100,000 parked runs each: one repetition is enough
# issue 21: a plain `def` function, large outputs (repeated); a backlog of 1,000,000 runs,
# and the database work per step, counted (once: each in a cell of its own)
REPEATED_NEW = ["sequential_def", "concurrent_def", "large_sequential", "large_concurrent"]
ONCE_NEW = ["backlog", "dbwork"]
# issue 18: checkpoint latency while 50,000 finished runs are pruned (once, a cell of its own)
ONCE_OPS = ["prune"]
SLOW = {"sdk": 3.0, "backlog": 2.0}  # cells given more time than the others
# workload 7, SQLite only: the 10-step function native and in SDK apps, and the HTTP floor
SDK = ["sdk_native", "sdk_py", "sdk_js", "http_rtt"]


@dataclass
class Cell:
    system: str
    backend: str
    workloads: list[str]
    rep: int
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def plan(
    sizes: Sizes,
    systems: list[str],
    backends: list[str],
    extras: bool,
    only: list[str] | None = None,
) -> list[Cell]:
    """The cells of every repetition, each repetition in a rotated order of systems; the
    workloads run once go in cells of their own, in the first. `only`: these workloads."""
    lanes: list[tuple[str, str, list[str], list[str]]] = []
    for backend in backends:
        for system in systems:
            if system == "floor":
                # the latency workload's floor: one commit after the same idle gap
                lanes.append((system, backend, ["sequential", "latency"], []))
            elif system == "dbos":
                lanes.append((system, backend, CORE, ["dbwork"] if extras else []))
            elif system == "sdk":
                if backend == "sqlite":
                    lanes.append((system, backend, SDK, []))
            elif system == "stepstone":
                # PostgreSQL scales out by processes: the concurrent workload again, on more
                scale_out = ["concurrent_procs"] if backend == "postgres" else []
                repeated = CORE + scale_out + (REPEATED_EXTRA + REPEATED_NEW if extras else [])
                once = ONCE_EXTRA + ONCE_NEW + ONCE_OPS if extras else []
                lanes.append((system, backend, repeated, once))
    cells = []
    for rep in range(sizes.repetitions):
        shift = rep % max(1, len(lanes))
        for system, backend, repeated, once in lanes[shift:] + lanes[:shift]:
            chosen = [w for w in repeated if only is None or w in only]
            if chosen:
                cells.append(Cell(system, backend, chosen, rep))
            if rep == 0:
                for workload in once:
                    if only is None or workload in only:
                        cells.append(Cell(system, backend, [workload], rep))
    return cells


def run_cell(cell: Cell, sizes: Sizes, workdir: str, pg_admin: str | None, timeout: float) -> None:
    spec = {
        "system": cell.system,
        "backend": cell.backend,
        "workloads": cell.workloads,
        "sizes": sizes.to_dict(),
        "dir": workdir,
        "pg": pg_admin,
        "rep": cell.rep,
    }
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.cell", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=root,
        )
    except subprocess.TimeoutExpired:
        cell.error = f"timed out after {timeout:.0f}s"
        return
    finally:
        cell.seconds = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        cell.error = f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}"
        return
    out = json.loads(lines[-1][len(MARK) :])
    if not out.get("ok"):
        cell.error = out.get("error", "failed")
        return
    cell.results = out["results"]


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
    }
    with contextlib.suppress(OSError):  # others' work on this machine skews the numbers
        info["loadavg"] = list(os.getloadavg())
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        info["cpu"] = names[0] if names else ""
    except OSError:
        pass
    try:
        import importlib.metadata as md

        info["stepstone"] = md.version("stepstone")
        info["dbos"] = md.version("dbos")
    except Exception:
        pass
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        info["git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root
        ).stdout.strip()
    except OSError:
        pass
    return info


def execute(
    sizes: Sizes,
    *,
    systems: list[str],
    postgres: bool,
    extras: bool,
    only: list[str] | None = None,
    log: Any = print,
    timeout: float = 900.0,
) -> dict[str, Any]:
    from . import pg

    workdir = tempfile.mkdtemp(prefix="stepstone-bench-", dir=os.environ.get("BENCH_DIR"))
    notes: list[str] = []
    started = time.perf_counter()
    load_before = machine_info().get("loadavg")
    try:
        with pg.cluster() if postgres else _no_pg() as cluster:
            backends = ["sqlite"]
            pg_admin = None
            pg_version = None
            if cluster is not None:
                backends.append("postgres")
                pg_admin = cluster.admin_url
                pg_version = cluster.version
            elif postgres:
                notes.append("PostgreSQL rows skipped: no PostgreSQL server binaries here")
            cells = plan(sizes, systems, backends, extras, only)
            for i, cell in enumerate(cells, 1):
                log(
                    f"[{i}/{len(cells)}] {cell.system} on {cell.backend}, repetition "
                    f"{cell.rep + 1}: {', '.join(cell.workloads)}"
                )
                # the SDK lane's steps go over HTTP to other processes: far slower than native
                slow = max(SLOW.get(name, 1.0) for name in [cell.system, *cell.workloads])
                run_cell(cell, sizes, workdir, pg_admin, timeout * slow)
                if cell.error:
                    log(f"    failed: {cell.error}")
                for name, result in cell.results.items():
                    if isinstance(result, dict) and "error" in result:
                        log(f"    {name} failed: {result['error']}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    machine = machine_info()
    machine["loadavg_after"] = machine.pop("loadavg", None)
    return {
        "machine": machine,
        "postgres_version": pg_version,
        "sizes": sizes.to_dict(),
        "loadavg_before": load_before,
        "notes": notes,
        "seconds": time.perf_counter() - started,
        "cells": [c.__dict__ for c in cells],
    }


class _no_pg:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
