"""Random function programs against a reference model of the semantics (hypothesis).

The programs, the model and the interpreter are in tests/programs.py: steps that fail N
times (retriably or not), parallel groups, sleeps, waits for events (delivered or timing
out), caught StepErrors, failures outside steps. Two tests:

- in one process, on every store: the engine agrees with the model, and each handler
  ran exactly once per attempt;
- with worker processes killed at random under a batch of programs, on SQLite and
  PostgreSQL: the runs still agree with the model, every attempt ran at least once, and
  no handler ran for an attempt after its step had finished.

`make chaos` (STEPSTONE_CHAOS=long) runs over 1,000 programs in each.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stepstone
from tests import ledger
from tests.process import READY, start_worker, stop
from tests.programs import (
    Program,
    check_run,
    delivered_waits,
    interpret,
    model,
    programs,
    signal_for,
    to_data,
)
from tests.summary import note

LONG = os.environ.get("STEPSTONE_CHAOS") == "long"
EXAMPLES = {"memory": 400, "sqlite": 350, "postgres": 350} if LONG else {"memory": 40}
EXAMPLES.setdefault("sqlite", 8)
EXAMPLES.setdefault("postgres", 8)
# under kills: batches of programs per database (500 programs each in make chaos)
BATCHES, BATCH = (20, 25) if LONG else (3, 8)
SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


async def answer_waits(app: stepstone.App, run_id: str, key: str, program: Program) -> None:
    """Sends each delivered wait's event once the run waits for it (an event sent earlier
    would not be waited for yet), until the run ends."""
    due, sent = delivered_waits(program), set()
    while True:
        run = await app.get_run(run_id)
        if run is None or run.status.is_final:
            return
        for step in run.steps:
            if step.id in due - sent and step.status == "waiting":
                await app.send(signal_for(key, step.id))
                sent.add(step.id)
        await asyncio.sleep(0.01)


# -- in one process --------------------------------------------------------------------
async def execute(program: Program, url: str) -> tuple[stepstone.Run, Counter[str]]:
    calls: Counter[str] = Counter()
    app = stepstone.App("model", database=url, backoff=lambda attempt: 0.0)

    @app.function(id="program", trigger="model/run", retries=program.retries)
    async def run_program(ctx: stepstone.Context) -> Any:
        return await interpret(ctx, program, lambda ctx, step_id: calls.update([step_id]))

    key = uuid.uuid4().hex
    try:
        async with app.worker(poll_interval=0.01):
            [event_id] = await app.send({"name": "model/run", "data": {"key": key}})
            [run] = await app.runs_for_event(event_id)
            answering = asyncio.create_task(answer_waits(app, run.id, key, program))
            try:
                return await app.wait_for_run(run.id, timeout=30), calls
            finally:
                answering.cancel()
    finally:
        await app.close()


@pytest.fixture(params=list(EXAMPLES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, int]:
    """A database URL shared by the test's programs (each has its own runs), and how many
    programs to try on it."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'model.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    return url, EXAMPLES[request.param]


@pytest.mark.timeout(1800 if LONG else 300)
def test_engine_agrees_with_the_model(store: tuple[str, int]) -> None:
    url, examples = store
    tried = 0

    @settings(max_examples=examples, **SETTINGS)
    @given(programs)
    def agrees(program: Program) -> None:
        nonlocal tried
        tried += 1
        run, calls = asyncio.run(execute(program, url))
        assert check_run(run, program) == []
        for step_id, (_, attempts) in model(program).steps.items():
            assert calls[step_id] == attempts, (step_id, calls, program)  # never re-run

    agrees()
    name = "postgres" if url.startswith("postgres") else url.split(":")[0]
    note(f"{name}: model: {tried} programs in one process")


# -- worker processes killed under a batch of programs ------------------------------------
LEASE = 1.0
MIN_LIFE = 0.5  # seconds a worker works before it may be killed: else no run progresses
KILL_EVERY = 0.7


class Workers:
    """Worker processes of tests/apps/programs.py, killed and replaced on demand."""

    def __init__(self, url: str, work_dir: Path, count: int) -> None:
        self.url, self.work_dir = url, work_dir
        self.ledger = work_dir / "ledger.txt"
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.ready_at: dict[int, float] = {}
        self.kills = 0
        self._names = iter(range(10_000))
        for _ in range(count):
            self.spawn()

    def spawn(self) -> None:
        name = f"w{next(self._names)}"
        env = {"PROGRAMS_LEDGER": str(self.ledger)}
        app, log_dir = "tests.apps.programs:app", self.work_dir
        proc = start_worker(self.url, app, name=name, env=env, log_dir=log_dir, lease=LEASE)
        self.procs.append((proc, self.work_dir / f"worker-{name}.log"))

    def _working(self, proc: subprocess.Popen[bytes], log: Path) -> bool:
        if proc.poll() is not None:
            return False
        if proc.pid not in self.ready_at:
            if READY not in log.read_text(errors="replace"):
                return False
            self.ready_at[proc.pid] = time.monotonic()
        return time.monotonic() - self.ready_at[proc.pid] >= MIN_LIFE

    async def ready(self) -> None:
        """Until every worker is up (a batch sent earlier might end before any kill)."""
        while not all(self._working(p, log) for p, log in self.procs):
            await asyncio.sleep(0.05)

    def kill_one(self) -> None:
        candidates = [(p, log) for p, log in self.procs if self._working(p, log)]
        if candidates:
            victim = random.choice(candidates)
            victim[0].kill()
            victim[0].wait()
            self.procs.remove(victim)
            self.kills += 1
            self.spawn()

    def close(self) -> None:
        for proc, _ in self.procs:
            stop(proc)


async def _published(app: stepstone.App) -> None:
    store = await app.store()
    for _ in range(1500):
        ids = {c["id"] for c in await store.registered_functions()}
        if {"program-r0", "program-r1", "program-r2"} <= ids:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the workers never published their functions")


async def run_batch(batch: list[Program], workers: Workers, *, timeout: float = 240) -> None:
    client = stepstone.App("driver", database=workers.url)
    try:
        await _published(client)
        await workers.ready()
        keys = [uuid.uuid4().hex for _ in batch]
        events = [
            {"name": f"model/run.r{p.retries}", "data": {"key": k, "program": to_data(p)}}
            for p, k in zip(batch, keys, strict=True)
        ]
        event_ids = await client.send(events)
        run_ids = []
        for event_id in event_ids:
            [run] = await client.runs_for_event(event_id)
            run_ids.append(run.id)
        answering = [
            asyncio.create_task(answer_waits(client, run_id, key, program))
            for run_id, key, program in zip(run_ids, keys, batch, strict=True)
        ]
        deadline = time.monotonic() + timeout
        next_kill = time.monotonic()  # at once: the batch's runs are all in flight
        while not all(task.done() for task in answering):
            assert time.monotonic() < deadline, "the batch's runs did not all end in time"
            if time.monotonic() >= next_kill:
                workers.kill_one()
                next_kill = time.monotonic() + KILL_EVERY * random.uniform(0.5, 1.5)
            await asyncio.sleep(0.05)
        for task in answering:
            task.result()
        problems: list[str] = []
        runs = [await client.get_run(run_id) for run_id in run_ids]
        calls = Counter((e.run_id, e.step_id, e.attempt) for e in ledger.read(workers.ledger))
        for run, program in zip(runs, batch, strict=True):
            assert run is not None
            problems += check_run(run, program, killed=True)
            for step_id in model(program).steps:
                attempts = run.step(step_id).attempts
                made = {a for (r, s, a) in calls if (r, s) == (run.id, step_id)}
                # every attempt saved ran (some twice, cut short by a kill); none after
                if made != set(range(attempts)):
                    problems.append(f"run {run.id} step {step_id}: attempts run {sorted(made)}")
        assert problems == [], problems[:10]
    finally:
        await client.close()


@pytest.fixture(params=["sqlite", "postgres"])
def killable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'model.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.timeout(3600 if LONG else 400)
def test_engine_agrees_with_the_model_while_workers_are_killed(
    killable_url: str, tmp_path: Path
) -> None:
    workers = Workers(killable_url, tmp_path, count=3)
    try:

        @settings(max_examples=BATCHES, **SETTINGS)
        @given(st.lists(programs, min_size=BATCH, max_size=BATCH))
        def agrees(batch: list[Program]) -> None:
            asyncio.run(run_batch(batch, workers))

        agrees()
        assert workers.kills >= BATCHES  # a kill at least per batch, or nothing was tested
        store = "postgres" if killable_url.startswith("postgres") else "sqlite"
        note(f"{store}: model: {BATCHES * BATCH} programs on workers killed {workers.kills} times")
    finally:
        workers.close()
