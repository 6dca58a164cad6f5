"""The chaos harness: a mixed workload under SIGKILLs (and a database restart), then checks.

Used by tests/test_chaos.py (a short run in `make test`, a long one in `make chaos`).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import stepstone
from tests import ledger
from tests.apps.chaos import expected_output
from tests.process import READY, start_worker, stop

APP = "tests.apps.chaos:app"


@dataclass
class Report:
    events: int = 0
    runs: int = 0
    steps: int = 0
    executions: int = 0
    late_starts: int = 0  # by workers stopped across the hand-over (results refused)
    kills: int = 0
    pauses: int = 0  # SIGSTOPs (by the harness or the worker itself) resumed past the lease
    restarts: int = 0
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"chaos: {self.events} events, {self.runs} runs, {self.steps} steps saved, "
            f"{self.executions} handler executions ({self.late_starts} late, by paused "
            f"workers), {self.kills} kills, "
            f"{self.pauses} pauses past the lease, {self.restarts} database restarts, "
            f"{len(self.violations)} violations"
        )


LEASE = 1.0
MIN_LIFE = 1.5  # seconds a worker works before it may be killed: else no run progresses
PAUSE_FOR = 2.5 * LEASE  # long enough for another worker to take the runs over


def _stopped(proc: subprocess.Popen[bytes]) -> bool:
    try:
        with open(f"/proc/{proc.pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "T"
    except OSError:
        return False


async def _wait_published(app: stepstone.App) -> None:
    store = await app.store()
    for _ in range(1000):
        ids = {c["id"] for c in await store.registered_functions()}
        if {"chaos-main", "chaos-child"} <= ids:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the workers never published their functions")


async def drive(
    url: str,
    work_dir: Path,
    *,
    events: int,
    workers: int,
    kill_every: float,
    timeout: float,
    restart_database: Callable[[], None] | None = None,
    min_kills: int = 0,
    pause_every: float = 0.0,
    self_stop: float = 0.0,
) -> Report:
    """Send at least `events` (more until `min_kills` workers were killed), SIGKILL a worker
    every ~`kill_every` s and SIGSTOP one every ~`pause_every` s (0: never); with
    `self_stop`, workers also stop themselves at their most dangerous moments. Paused
    workers are resumed after PAUSE_FOR. Then check every run and the ledger."""
    report = Report()
    ledger_path = work_dir / "ledger.txt"
    env = {"CHAOS_LEDGER": str(ledger_path), "CHAOS_SELF_STOP": str(self_stop)}
    procs: list[subprocess.Popen[bytes]] = []
    names = iter(range(10_000))
    stopped_at: dict[int, float] = {}

    logs: dict[int, Path] = {}
    worker_of: dict[int, str] = {}
    # the harness's own lines in the ledger: when it resumed a stopped worker
    resumes = ledger.Ledger(ledger_path, "harness")

    def spawn() -> None:
        name = f"w{next(names)}"
        proc = start_worker(url, APP, name=name, env=env, log_dir=work_dir, lease=LEASE)
        logs[proc.pid] = work_dir / f"worker-{name}.log"
        worker_of[proc.pid] = name
        procs.append(proc)

    ready_at: dict[int, float] = {}

    def working(proc: subprocess.Popen[bytes]) -> bool:
        """Alive, not paused, and working for MIN_LIFE: a worker killed while it boots
        (seconds on a busy machine) tests nothing, and one killed as soon as it claims
        lets no run progress."""
        if proc.poll() is not None or proc.pid in stopped_at:
            return False
        if proc.pid not in ready_at:
            if READY not in logs[proc.pid].read_text(errors="replace"):
                return False
            ready_at[proc.pid] = time.monotonic()
        return time.monotonic() - ready_at[proc.pid] >= MIN_LIFE

    def resume_paused() -> None:
        now = time.monotonic()
        for proc in list(procs):
            if proc.poll() is not None:
                stopped_at.pop(proc.pid, None)
            elif proc.pid in stopped_at or _stopped(proc):
                since = stopped_at.setdefault(proc.pid, now)
                if now - since >= PAUSE_FOR:
                    resumes.resumed(worker_of[proc.pid])
                    os.kill(proc.pid, signal.SIGCONT)
                    del stopped_at[proc.pid]
                    report.pauses += 1

    # in a thread of its own: a worker paused inside a SQLite write transaction holds the
    # database lock, and the driver's own queries wait for it
    done = threading.Event()

    def resumer() -> None:
        while not done.wait(0.05):
            with lock:
                resume_paused()

    lock = threading.Lock()
    resumer_thread = threading.Thread(target=resumer, name="chaos-resumer", daemon=True)
    resumer_thread.start()

    for _ in range(workers):
        spawn()
    client = stepstone.App("chaos-driver", database=url)
    try:
        await _wait_published(client)
        run_of: dict[int, str] = {}
        finished: set[int] = set()
        signalled: set[int] = set()
        deadline = time.monotonic() + timeout
        next_kill = time.monotonic() + kill_every / 2
        next_pause = time.monotonic() + pause_every if pause_every else float("inf")
        restarted = restart_database is None
        sent = 0
        while True:
            # events arrive over time, so kills and the restart hit a workload in progress
            if sent < events or (report.kills < min_kills and len(finished) >= sent - 4):
                numbers = range(sent, sent + 2)
                ids = await _send(client, [{"name": "chaos/go", "data": {"n": n}} for n in numbers])
                for n, event_id in zip(numbers, ids, strict=True):
                    runs = await client.runs_for_event(event_id)
                    if len(runs) != 1:
                        report.violations.append(f"event {event_id} started {len(runs)} runs")
                        finished.add(n)
                        continue
                    run_of[n] = runs[0].id
                sent += len(numbers)
                report.events = sent
            for n, run_id in run_of.items():
                if n in finished:
                    continue
                run = await _get(client, run_id)
                if run is not None and run.status.is_final:
                    finished.add(n)
                elif (
                    run is not None
                    and n % 5 == 0
                    and n not in signalled
                    and any(s.id == "signal" and s.status == "waiting" for s in run.steps)
                ):
                    await _send(client, [{"name": "chaos/signal", "data": {"n": n}}])
                    signalled.add(n)
            pending = sent - len(finished)
            if pending == 0 and sent >= events and report.kills >= min_kills:
                break
            if time.monotonic() > deadline:
                report.violations.append(f"{pending} runs did not finish within {timeout}s")
                break
            now = time.monotonic()
            lock.acquire()
            candidates = [p for p in procs if working(p)] if now >= next_kill else []
            if candidates:
                victim = random.choice(candidates)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                report.kills += 1
                spawn()
                next_kill = now + kill_every * random.uniform(0.5, 1.5)
                if not restarted and report.kills >= 2 and restart_database is not None:
                    restart_database()
                    report.restarts += 1
                    restarted = True
            if now >= next_pause:
                running = [p for p in procs if working(p)]
                if len(running) > 1:  # keep one worker going
                    victim = random.choice(running)
                    victim.send_signal(signal.SIGSTOP)
                    stopped_at[victim.pid] = now
                next_pause = now + pause_every * random.uniform(0.5, 1.5)
            lock.release()
            await asyncio.sleep(0.05)
        done.set()
        resumer_thread.join()
        await _check(client, run_of, ledger_path, report)
    finally:
        done.set()
        for proc in procs:
            stop(proc)
        await client.close()
    return report


async def _send(app: stepstone.App, batch: list[dict[str, object]]) -> list[str]:
    for attempt in range(100):  # the database may be restarting
        try:
            return await app.send(batch)
        except stepstone.EventError:
            raise
        except Exception:
            if attempt == 99:
                raise
            await asyncio.sleep(0.2)
    return []


async def _get(app: stepstone.App, run_id: str) -> stepstone.Run | None:
    for attempt in range(50):  # the database may be restarting
        try:
            return await app.get_run(run_id)
        except Exception:
            if attempt == 49:
                raise
            await asyncio.sleep(0.2)
    return None


async def _check(
    client: stepstone.App, run_of: dict[int, str], ledger_path: Path, report: Report
) -> None:
    saved: dict[tuple[str, str], str] = {}
    for n, run_id in run_of.items():
        run = await client.get_run(run_id)
        assert run is not None
        report.runs += 1
        if run.status != "completed":
            report.violations.append(f"run {run_id} (n={n}) ended {run.status}: {run.error}")
            continue
        if run.output != expected_output(n):
            report.violations.append(f"run {run_id} output {run.output} != {expected_output(n)}")
        completions = [h for h in run.history if h.kind == "completed"]
        if len(completions) != 1:
            report.violations.append(f"run {run_id} completed {len(completions)} times")
        for step in run.steps:
            report.steps += 1
            if step.kind == "run" and step.status == "completed":
                saved[(run_id, step.id)] = step.output["token"]
            if step.kind == "invoke" and step.status != "completed":
                report.violations.append(f"run {run_id}: invoke step {step.status}")
    for event_id in [f"{rid}:finished" for rid in run_of.values()]:
        if await client.get_event(event_id) is None:
            report.violations.append(f"no finished event {event_id}")
    findings = ledger.check(ledger.read(ledger_path), saved)
    report.executions = findings.executions
    report.late_starts = findings.late_starts
    report.violations += findings.violations
