"""Flow control holds across 3 worker processes sharing one PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import stepstone
from tests.process import start_worker, stop

APP = "tests.apps.flowapp:app"


async def _drive(url: str) -> dict[str, list[stepstone.Run]]:
    app = stepstone.App("client", database=url)
    try:
        store = await app.store()
        while len(await store.registered_functions()) < 3:
            await asyncio.sleep(0.05)
        groups = {
            "limited": [{"name": "flow/limited", "data": {"account": a}} for a in "ab" * 10],
            "rated": [{"name": "flow/rated"} for _ in range(12)],
            "single": [{"name": "flow/single", "data": {"k": 1}} for _ in range(6)],
        }
        out: dict[str, list[stepstone.Run]] = {}
        for name, events in groups.items():
            ids = await app.send(events)
            runs = [(await app.runs_for_event(i))[0] for i in ids]
            out[name] = [await app.wait_for_run(r.id, timeout=60) for r in runs]
        return out
    finally:
        await app.close()


def _peak_overlap(ledger: Path) -> dict[str, int]:
    moments: list[tuple[float, int, str]] = []
    for path in ledger.iterdir():
        for line in path.read_text().splitlines():
            at, kind, account = line.split()
            moments.append((float(at), 1 if kind == "start" else -1, account))
    running: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)
    for _at, delta, account in sorted(moments, key=lambda m: (m[0], m[1])):
        running[account] += delta
        peak[account] = max(peak[account], running[account])
    return dict(peak)


def test_limits_hold_across_three_worker_processes(tmp_path: Path, postgres_url: str) -> None:
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    env = {"FLOW_LEDGER": str(ledger)}
    # a long lease: a worker stalled past its lease on a loaded machine has its runs taken
    # over, and a step run again while the first attempt goes on would count as overlap
    workers = [
        start_worker(postgres_url, APP, name=f"w{i}", env=env, log_dir=tmp_path, lease=10.0)
        for i in range(3)
    ]
    try:
        runs = asyncio.run(_drive(postgres_url))
    finally:
        for worker in workers:
            stop(worker)
    assert all(r.status == "completed" for r in runs["limited"])
    workers_used = {
        h.data["worker"] for r in runs["limited"] for h in r.history if h.kind == "started"
    }
    assert len(workers_used) >= 2  # the runs really were spread over processes
    assert _peak_overlap(ledger) == {"a": 2, "b": 2}  # never more than 2 at once per account
    statuses = [r.status.value for r in runs["rated"]]
    assert statuses.count("completed") == 5 and statuses.count("skipped") == 7
    singles = [r.status.value for r in runs["single"]]
    assert singles.count("completed") == 1 and singles.count("skipped") == 5
