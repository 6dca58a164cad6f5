"""Many worker processes on one PostgreSQL database: scale-out, crashes, paused workers,
a database restart, and NOTIFY wake-ups. Every wait is bounded; no assertion is on timing.

The workers are real processes (`python -m stepstone worker tests.apps.scale:app`); every
step execution appends a line to its process's ledger file (tests/apps/scale.py).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stepstone.store.postgres_migrate import migrate
from tests.apps.scale import STEPS, Execution, make_app, read_ledger
from tests.pg_cluster import PostgresCluster, start_cluster
from tests.process import WorkerProcess

pytestmark = pytest.mark.slow


class Workers:
    """Starts worker processes for one test and always stops them at its end."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.ledger = tmp_path / "ledger"
        self.logs = tmp_path / "logs"
        self.started: list[WorkerProcess] = []

    def start(self, count: int = 1, **options: Any) -> list[WorkerProcess]:
        new = [WorkerProcess(self.url, self.ledger, self.logs, **options) for _ in range(count)]
        self.started += new
        for worker in new:
            worker.wait_ready()
        return new

    def executions(self) -> list[Execution]:
        return read_ledger(self.ledger) if self.ledger.exists() else []

    def close(self) -> None:
        for worker in self.started:
            worker.close()


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(postgres_url, tmp_path)
    try:
        yield group
    finally:
        group.close()


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode(), params).fetchall()


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


def completed_runs(url: str, function_id: str = "five-steps") -> int:
    rows = query(
        url,
        "SELECT count(*) FROM runs WHERE function_id = %s AND status = 'completed'",
        function_id,
    )
    return int(rows[0][0])


async def send_runs(url: str, count: int, *, batch: int = 500, **data: Any) -> list[str]:
    """Send `count` events to five-steps from this process; return their event ids."""
    app = make_app(url)
    ids: list[str] = []
    try:
        for start in range(0, count, batch):
            events = [{"name": "scale/run", "data": data} for _ in range(start, start + batch)]
            ids += await app.send(events[: count - start])
    finally:
        await app.close()
    return ids


def saved_steps(url: str) -> dict[tuple[str, str], tuple[str, float]]:
    """(run id, step id) -> (token saved as its output, when it ended)."""
    rows = query(url, "SELECT run_id, id, output, ended_at FROM steps WHERE status = 'completed'")
    return {
        (run_id, step_id): (output.strip('"'), ended) for run_id, step_id, output, ended in rows
    }


def assert_every_run_completed_once(url: str, runs: int) -> None:
    by_status = dict(query(url, "SELECT status, count(*) FROM runs GROUP BY status"))
    assert by_status == {"completed": runs}
    ends = query(
        url, "SELECT run_id, count(*) FROM history WHERE kind = 'completed' GROUP BY run_id"
    )
    assert len(ends) == runs and all(count == 1 for _, count in ends)
    finished = query(url, "SELECT count(*) FROM events WHERE name = 'stepstone/function.finished'")
    assert finished == [(runs,)]


async def test_scale_out_runs_each_step_once_across_workers(workers: Workers) -> None:
    runs = 2000
    # a long lease: nothing fails here, so no run may change hands, however loaded the CPU
    started = workers.start(4, lease=30.0, concurrency=50)
    await send_runs(workers.url, runs)
    await wait_until(lambda: completed_runs(workers.url) == runs, "2,000 runs to complete", 150)

    assert_every_run_completed_once(workers.url, runs)
    # claimed once each: the lease never expired, so no run was started twice
    [(starts,)] = query(workers.url, "SELECT count(*) FROM history WHERE kind = 'started'")
    assert starts == runs

    executions = workers.executions()
    per_step = Counter((e.run_id, e.step_id) for e in executions)
    assert len(per_step) == runs * STEPS
    assert set(per_step.values()) == {1}  # every step's side effect happened exactly once
    saved = saved_steps(workers.url)
    assert {key: token for key, (token, _) in saved.items()} == {
        (e.run_id, e.step_id): e.token for e in executions
    }
    runs_per_worker = Counter(e.pid for e in executions if e.step_id == "step-0")
    assert set(runs_per_worker) == {w.pid for w in started}  # every worker took part
    assert min(runs_per_worker.values()) >= runs // 20, runs_per_worker
    for worker in started:
        assert worker.stop() == 0


async def test_a_killed_worker_s_runs_finish_elsewhere_without_rerunning_steps(
    workers: Workers,
) -> None:
    runs = 300
    victim, *others = workers.start(3, lease=2.0, concurrency=40)
    await send_runs(workers.url, runs, pause=0.02)

    def victim_busy() -> bool:
        return sum(1 for e in workers.executions() if e.pid == victim.pid) >= 40

    await wait_until(victim_busy, "the victim to have run some steps")

    def held_by_victim() -> int:
        sql = "SELECT count(*) FROM jobs WHERE owner LIKE %s"
        return int(query(workers.url, sql, f"%:{victim.pid}:%")[0][0])

    # killed while it holds runs: stopped first, and let go again if it holds none
    # (between two of its batches), so that the kill always leaves runs to take over
    for _ in range(200):
        victim.signal(signal.SIGSTOP)
        if held_by_victim() > 0:
            break
        victim.signal(signal.SIGCONT)
        await asyncio.sleep(0.02)
    victim.signal(signal.SIGKILL)
    victim.process.wait()
    in_flight = [(held_by_victim(),)]
    await wait_until(lambda: completed_runs(workers.url) == runs, "every run to complete")

    assert in_flight[0][0] > 0  # the kill did leave runs behind to take over
    assert_every_run_completed_once(workers.url, runs)
    saved = saved_steps(workers.url)
    assert len(saved) == runs * STEPS
    by_step: dict[tuple[str, str], list[Execution]] = defaultdict(list)
    for execution in workers.executions():
        by_step[(execution.run_id, execution.step_id)].append(execution)
    for key, (token, ended_at) in saved.items():
        tokens = [e.token for e in by_step[key]]
        assert token in tokens, f"step {key} was saved from an execution that did not happen"
        # An execution that was not saved must have started before the saved one ended
        # (the killed worker's, lost with it): a step that finished never runs again.
        for other in by_step[key]:
            if other.token != token:
                assert other.started_at <= ended_at, f"step {key} ran again after it finished"
    taken_over = query(
        workers.url,
        "SELECT run_id FROM history WHERE kind = 'started' GROUP BY run_id HAVING count(*) > 1",
    )
    assert taken_over  # some runs were started twice: the victim's, resumed by the others
    for worker in others:
        assert worker.stop() == 0


async def test_a_paused_worker_cannot_write_for_runs_it_lost(workers: Workers) -> None:
    [paused] = workers.start(1, lease=2.0)
    app = make_app(workers.url)
    try:
        await app.send([{"name": "scale/slow", "data": {"pause": 3}} for _ in range(5)])
        # all five claimed by the only worker, each now in the middle of its 3 s step
        await wait_until(
            lambda: (
                query(workers.url, "SELECT count(*) FROM runs WHERE status = 'running'") == [(5,)]
            ),
            "the first worker to claim the runs",
        )
        paused.signal(signal.SIGSTOP)
        [takeover] = workers.start(1, lease=2.0)
        await wait_until(
            lambda: completed_runs(workers.url, "slow-step") == 5, "the runs to complete"
        )
        paused.signal(signal.SIGCONT)
        # its steps finish now and it tries to save them with its stale leases; stopping it
        # waits for those attempts to end. A step whose handler had not begun when the
        # pause came (the run was claimed, its first line not yet run: likelier on a loaded
        # machine) is not started at all once the lease ran out, and says so in the log
        await wait_until(
            lambda: (
                sum(1 for e in workers.executions() if e.pid == paused.pid)
                + paused.log().count("its lease ran out")
                >= 5
            ),
            "the resumed worker to finish or give up its steps",
        )
        assert paused.stop() == 0
    finally:
        await app.close()

    rows = query(workers.url, "SELECT id, output FROM runs WHERE function_id = 'slow-step'")
    tokens_by_pid = defaultdict(set)
    for e in workers.executions():
        tokens_by_pid[e.pid].add(e.token)
    for run_id, output in rows:
        saved = saved_steps(workers.url)
        slow_token = saved[(run_id, "slow")][0]
        assert slow_token in tokens_by_pid[takeover.pid], (
            run_id
        )  # not overwritten by the paused one
        assert saved[(run_id, "after")][0] in tokens_by_pid[takeover.pid]
        assert f'"{slow_token}"' in output
    # the paused worker's only writes are its original claims
    paused_writes = query(
        workers.url, "SELECT kind FROM history WHERE data LIKE %s", f"%:{paused.pid}:%"
    )
    assert sorted(kind for (kind,) in paused_writes) == ["started"] * 5
    assert takeover.stop() == 0


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    """A cluster of its own, for the test that restarts it."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


def listening_again(worker: WorkerProcess) -> Callable[[], bool]:
    return lambda: "LISTEN connection re-established" in worker.log()


async def test_workers_survive_a_database_restart(
    own_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = own_cluster.url(own_cluster.create_database())
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    # Workers wait at most 1 s for a connection: the server stays down longer than that,
    # so some checkpoints fail outright and their runs must resume after their leases end.
    group = Workers(url + "&pool_timeout=1", tmp_path)
    try:
        started = group.start(3, lease=2.0, concurrency=40)
        before = await send_runs(url, 300, pause=0.01)
        await wait_until(lambda: len(group.executions()) >= 300, "the workload to be under way")
        own_cluster.stop()
        await asyncio.sleep(3)  # the outage
        own_cluster.start()
        after = await send_runs(url, 100, pause=0.01)
        await wait_until(lambda: completed_runs(url) == 400, "every run to complete", 120)

        assert all(w.process.poll() is None for w in started)  # nobody died or was restarted
        assert_every_run_completed_once(url, 400)
        linked = query(url, "SELECT event_id FROM run_events")
        assert sorted(event_id for (event_id,) in linked) == sorted(before + after)
        assert len(saved_steps(url)) == 400 * STEPS
        logs = "".join(w.log() for w in started)
        assert "could not save a checkpoint" in logs  # the outage did cost some writes
        for worker in started:
            # the LISTEN connection comes back by itself in every worker
            await wait_until(listening_again(worker), f"worker {worker.pid} to LISTEN again", 30)
            assert worker.stop() == 0
    finally:
        group.close()


async def test_a_worker_is_woken_by_notify_not_by_polling(workers: Workers) -> None:
    # an hour between polls: only a notification can make this worker claim in time
    [worker] = workers.start(1, extra=("--poll", "3600"))
    [listener] = query(
        workers.url,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'stepstone-listen' "
        "AND query LIKE 'LISTEN%%'",
    )
    assert listener == (1,)
    app = make_app(workers.url)
    try:
        [event_id] = await app.send({"name": "scale/run", "data": {}})
        [run] = await app.runs_for_event(event_id)
        done = await app.wait_for_run(run.id, timeout=60)
    finally:
        await app.close()
    assert done.status == "completed"
    assert {e.pid for e in workers.executions()} == {worker.pid}
    assert worker.stop() == 0
