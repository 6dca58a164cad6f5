"""The chaos harness: a mixed workload under SIGKILLs (and a database restart), then checks.

Used by tests/test_chaos.py (a short run in `make test`, a long one in `make chaos`).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import stepstone
from tests.apps.chaos import expected_output
from tests.process import start_worker, stop

APP = "tests.apps.chaos:app"


@dataclass
class Report:
    events: int = 0
    runs: int = 0
    steps: int = 0
    executions: int = 0
    kills: int = 0
    restarts: int = 0
    violations: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"chaos: {self.events} events, {self.runs} runs, {self.steps} steps saved, "
            f"{self.executions} handler executions, {self.kills} kills, "
            f"{self.restarts} database restarts, {len(self.violations)} violations"
        )


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
) -> Report:
    report = Report()
    ledger_dir = work_dir / "ledger"
    ledger_dir.mkdir()
    env = {"CHAOS_LEDGER": str(ledger_dir)}
    procs: list[subprocess.Popen[bytes]] = []
    names = iter(range(10_000))

    def spawn() -> None:
        procs.append(
            start_worker(url, APP, name=f"w{next(names)}", env=env, log_dir=work_dir, lease=1.0)
        )

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
        restarted = restart_database is None
        sent = 0
        while True:
            # events arrive over time, so kills and the restart hit a workload in progress
            if sent < events:
                numbers = range(sent, min(events, sent + 2))
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
            pending = events - len(finished)
            if pending == 0:
                break
            if time.monotonic() > deadline:
                report.violations.append(f"{pending} runs did not finish within {timeout}s")
                break
            if time.monotonic() >= next_kill:
                victim = random.choice([p for p in procs if p.poll() is None])
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                report.kills += 1
                spawn()
                next_kill = time.monotonic() + kill_every * random.uniform(0.5, 1.5)
                if not restarted and report.kills >= 2 and restart_database is not None:
                    restart_database()
                    report.restarts += 1
                    restarted = True
            await asyncio.sleep(0.05)
        await _check(client, run_of, ledger_dir, report)
    finally:
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
    client: stepstone.App, run_of: dict[int, str], ledger_dir: Path, report: Report
) -> None:
    starts = _read_ledger(ledger_dir, report)
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
        children = [s for s in run.steps if s.kind == "invoke"]
        for step in run.steps:
            report.steps += 1
            if step.kind == "run":
                _check_step(run_id, step, starts, report)
        for child_step in children:
            if child_step.status != "completed":
                report.violations.append(f"run {run_id}: invoke step {child_step.status}")
    for event_id in [f"{rid}:finished" for rid in run_of.values()]:
        if await client.get_event(event_id) is None:
            report.violations.append(f"no finished event {event_id}")


def _read_ledger(ledger_dir: Path, report: Report) -> dict[tuple[str, str], list[float]]:
    """When each (run, step) handler execution started, from every process's ledger."""
    starts: dict[tuple[str, str], list[float]] = defaultdict(list)
    for path in ledger_dir.iterdir():
        for line in path.read_text().splitlines():
            at, kind, run_id, step_id, _pid = line.split()
            if kind == "start":
                report.executions += 1
                starts[(run_id, step_id)].append(float(at))
    return starts


def _check_step(
    run_id: str,
    step: stepstone.StepRecord,
    starts: dict[tuple[str, str], list[float]],
    report: Report,
) -> None:
    runs = starts.get((run_id, step.id), [])
    if not runs:
        report.violations.append(f"run {run_id} step {step.id}: saved but never executed")
        return
    assert step.ended_at is not None
    # the saved result is that of the last execution; any execution starting after it
    # ended means the step ran again after its result had been saved
    late = [t for t in runs if t > step.ended_at + 0.001]
    if late:
        report.violations.append(f"run {run_id} step {step.id} ran again after it was saved")
