"""The benchmark harness must not rot: run its stepstone workloads on a handful of steps.

No timing is asserted; benchmarks themselves run with `make bench`, never in `make test`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.pg_cluster import PostgresCluster

bench = pytest.importorskip("bench.stepstone_runner")
sdk_bench = pytest.importorskip("bench.sdk")
report = pytest.importorskip("bench.report")
tables = pytest.importorskip("bench.tables")
common = pytest.importorskip("bench.common")

Fresh = Callable[[str], str]


@pytest.fixture
def sqlite_fresh(tmp_path: Path) -> Fresh:
    """A new SQLite file per name, as the bench's harness asks for them."""
    return lambda name: f"sqlite:///{tmp_path / name}.db"


@pytest.fixture
def postgres_fresh(postgres_cluster: PostgresCluster, postgres_template: str) -> Fresh:
    """A new database of the test cluster per name, migrated from the template."""
    return lambda _name: postgres_cluster.url(
        postgres_cluster.create_database(template=postgres_template)
    )


def test_quick_harness_runs_stepstone_workloads(sqlite_fresh: Fresh) -> None:
    workloads = ["sequential", "concurrent", "latency", "timers", "sleepers", "waits"]

    results = asyncio.run(bench.run_all(sqlite_fresh, common.TINY, workloads))
    for name in workloads:
        assert "error" not in results[name], (name, results[name])
    assert results["sequential"]["steps"] == common.TINY.sequential_steps
    assert results["latency"]["first_step"]["n"] == common.TINY.latency_samples
    assert results["timers"]["lateness"]["n"] == common.TINY.timer_runs

    raw = {
        "sizes": common.TINY.to_dict(),
        "cells": [{"system": "stepstone", "backend": "sqlite", "results": results, "rep": 0}],
    }
    medians = report.aggregate(raw)
    assert report.get(medians, "stepstone/sqlite", "sequential", "steps_per_s")
    assert report.targets(medians, raw)


NEW_WORKLOADS = bench.NEW_WORKLOADS


def _check_new_workloads(results: dict[str, Any], sizes: Any, backend: str) -> None:
    """Issue 21's workloads ran, and what the report reads from them is there."""
    for name in NEW_WORKLOADS:
        assert "error" not in results[name], (name, results[name])
    assert results["large_sequential"]["bytes_per_step"] >= sizes.large_bytes
    assert results["large_sequential"]["vs_floor_paired"] > 0
    drained = results["backlog"]
    assert drained["rates"]["backlog"] and drained["backlog_vs_empty"] > 0
    assert drained["jobs_left"]["queued"] > 0  # the backlog was still there
    plan = drained["explain"]
    if backend == "sqlite":
        assert "jobs_by_time" in plan["sqlite_query_plan"]
    else:
        assert "Execution Time" in plan["postgres_custom"]
    work = results["dbwork"]
    assert work["steps"] == sizes.concurrent_runs * sizes.concurrent_steps
    assert work["per_step"]["rows_written"] > 1  # each step's row, and its run's share
    assert work["per_step"]["wal_bytes"] > 0 and work["per_step"]["commits"] > 0
    raw = {
        "sizes": sizes.to_dict(),
        "machine": {"cpus": 2},
        "cells": [{"system": "stepstone", "backend": backend, "results": results, "rep": 0}],
    }
    medians = report.aggregate(raw)
    lane = f"stepstone/{backend}"
    assert report.get(medians, lane, "concurrent_def", "steps_per_s")
    assert report.get(medians, lane, "dbwork", "per_step.commits")
    assert len(tables.new_tables(raw, medians)) >= 4
    assert tables.claim_plans(raw)
    assert any("drain rate" in goal["target"] for goal in report.targets(medians, raw))


def test_the_workloads_of_issue_21_run_on_sqlite(sqlite_fresh: Fresh) -> None:
    """A plain `def` function, large outputs, the backlog and the counted database work."""

    workloads = ["concurrent", *NEW_WORKLOADS]
    results = asyncio.run(bench.run_all(sqlite_fresh, common.TINY, workloads))
    _check_new_workloads(results, common.TINY, "sqlite")


def test_the_workloads_of_issue_21_run_on_postgres(postgres_fresh: Fresh) -> None:
    workloads = ["concurrent", *NEW_WORKLOADS]
    results = asyncio.run(bench.run_all(postgres_fresh, common.TINY, workloads))
    _check_new_workloads(results, common.TINY, "postgres")
    assert results["dbwork"]["quiesced"]


def test_database_work_is_counted_for_dbos_too(
    tmp_path: Path, postgres_cluster: PostgresCluster
) -> None:
    """DBOS on the same counted workload (when the bench extra is installed)."""
    pytest.importorskip("dbos")
    dbwork = pytest.importorskip("bench.dbwork")
    sizes = common.TINY
    urls = [
        f"sqlite:///{tmp_path / 'dbos.db'}",
        postgres_cluster.url(postgres_cluster.create_database()),
    ]
    for url in urls:
        counted = dbwork.count("dbos", url, sizes.concurrent_runs, sizes.concurrent_steps)
        assert counted["steps"] == sizes.concurrent_runs * sizes.concurrent_steps
        assert counted["per_step"]["commits"] >= 1, (url, counted["per_step"])  # one a step
        assert counted["per_step"]["wal_bytes"] > 0


def test_postgres_workloads_run_with_the_paired_floor_and_worker_processes(
    postgres_fresh: Fresh,
) -> None:
    sizes = common.TINY
    workloads = ["sequential", "concurrent_procs", "timers_paced", "waits"]

    results = asyncio.run(bench.run_all(postgres_fresh, sizes, workloads))
    for name in workloads:
        assert "error" not in results[name], (name, results[name])
    assert results["sequential"]["vs_floor_paired"] > 0
    assert results["concurrent_procs"]["worker_processes"] == sizes.worker_processes
    by = results["concurrent_procs"]["by_processes"]
    assert sorted(map(int, by)) == sorted({*sizes.worker_process_counts, sizes.worker_processes})
    assert all(r["cpu_s"]["database"] >= 0 for r in by.values())  # read from /proc
    assert results["timers_paced"]["sent_per_s"] == sizes.timer_rate_postgres
    raw = {
        "sizes": sizes.to_dict(),
        "cells": [{"system": "stepstone", "backend": "postgres", "results": results, "rep": 0}],
    }
    goals = report.targets(report.aggregate(raw), raw)
    assert any("PostgreSQL" in goal["target"] for goal in goals)


def test_the_intake_workload_serves_with_stepstones_own_server(sqlite_fresh: Fresh) -> None:
    """The intake workloads, keep-alive over one connection included, run to the end."""
    results = bench.run_all(sqlite_fresh, common.TINY, ["intake"])
    intake = asyncio.run(results)["intake"]
    assert "error" not in intake, intake
    assert intake["keepalive"]["n"] > 0
    assert intake["single"]["events"] >= common.TINY.intake_events


def test_sdk_workload_runs_native_and_both_sdk_apps(sqlite_fresh: Fresh) -> None:
    """Workload 7 on a handful of runs: the same function natively and in the Python and
    npm SDK apps (the pinned SDKs of tests/sdk/harness.py), and the HTTP floor."""
    sizes = common.TINY

    results = asyncio.run(sdk_bench.run_all(sqlite_fresh, sizes, sdk_bench.WORKLOADS))
    for name in sdk_bench.WORKLOADS:
        assert "error" not in results[name], (name, results[name])
    for kind in ("native", "py", "js"):
        result = results[f"sdk_{kind}"]
        assert (
            result["runs"] == sizes.sdk_runs and result["steps_per_run"] == sizes.concurrent_steps
        )
        assert result["first_step"]["n"] == sizes.sdk_latency_samples
        assert 0 < result["first_step"]["p50_ms"] <= result["run"]["p50_ms"]
        assert result["cpu_ms_per_step"]["stepstone"] > 0
    assert results["sdk_py"]["cpu_ms_per_step"]["app"] > 0
    assert results["sdk_js"]["function_id"] == "bench-ten-steps"
    assert results["http_rtt"]["raw"]["n"] == sizes.http_samples

    raw = {
        "sizes": sizes.to_dict(),
        "cells": [{"system": "sdk", "backend": "sqlite", "results": results, "rep": 0}],
    }
    medians = report.aggregate(raw)
    assert report.get(medians, "sdk/sqlite", "sdk_py", "steps_per_s")
    assert report.get(medians, "sdk/sqlite", "http_rtt", "httpx.p50_ms")
    assert report.sdk_table(raw, medians) is not None


def _check_prune(results: dict[str, Any], sizes: Any, backend: str) -> None:
    """Issue 18's prune workload: every finished run loaded was pruned, by the worker's
    process and by another one, with the stream's checkpoints timed meanwhile."""
    pruned = results["prune"]
    assert "error" not in pruned, pruned
    assert pruned["alone"]["n"] > 0
    for phase in ("worker", "other_process"):
        done = pruned[phase]
        assert done["runs_deleted"] == sizes.prune_runs
        assert done["events_deleted"] == 2 * sizes.prune_runs  # its trigger and its end
        # each run's ten rows: itself, 3 steps, 3 history entries, a link, 2 events
        assert done["rows_deleted"] == 10 * sizes.prune_runs and done["old_rows_left"] == 0
        assert done["checkpoints"]["n"] > 0 and done["prune_s"] > 0
    raw = {
        "sizes": sizes.to_dict(),
        "cells": [{"system": "stepstone", "backend": backend, "results": results, "rep": 0}],
    }
    medians = report.aggregate(raw)
    assert tables.prune_table(raw, medians) is not None
    assert any(
        "during `stepstone prune`" in goal["target"] for goal in report.targets(medians, raw)
    )


def test_the_prune_workload_runs_on_sqlite(sqlite_fresh: Fresh) -> None:
    results = asyncio.run(bench.run_all(sqlite_fresh, common.TINY, ["prune"]))
    _check_prune(results, common.TINY, "sqlite")


def test_the_prune_workload_runs_on_postgres(postgres_fresh: Fresh) -> None:
    results = asyncio.run(bench.run_all(postgres_fresh, common.TINY, ["prune"]))
    _check_prune(results, common.TINY, "postgres")


def test_the_floor_measures_one_commit_after_the_latency_workloads_idle_gap(
    tmp_path: Path, postgres_fresh: Fresh
) -> None:
    """The latency workload's floor (one INSERT + COMMIT after the same idle gap) runs on
    both databases, and the event→first step targets show it beside their figure."""
    cell = pytest.importorskip("bench.cell")
    floor = pytest.importorskip("bench.floor")
    sizes = common.TINY
    spec = {
        "system": "floor",
        "backend": "sqlite",
        "workloads": ["sequential", "latency"],
        "sizes": sizes.to_dict(),
        "dir": str(tmp_path),
        "rep": 0,
    }
    on_sqlite = cell.run(spec)  # the floor's cell, as the harness runs it
    assert on_sqlite["sequential"]["steps"] == sizes.sequential_steps
    on_postgres = {
        "latency": floor.postgres_idle_commit(
            postgres_fresh("floor"), sizes.latency_samples, sizes.latency_gap
        )
    }
    cells = []
    first_step = {"first_step": {"p50_ms": 2.0, "p99_ms": 4.0, "n": 1}}
    for backend, results in (("sqlite", on_sqlite), ("postgres", on_postgres)):
        assert results["latency"]["commit"]["n"] == sizes.latency_samples
        assert results["latency"]["commit"]["p50_ms"] > 0
        cells.append({"system": "floor", "backend": backend, "results": results, "rep": 0})
        ours = {"latency": first_step}
        cells.append({"system": "stepstone", "backend": backend, "results": ours, "rep": 0})
    raw = {"sizes": sizes.to_dict(), "cells": cells}
    shown = [
        goal["shown"]
        for goal in report.targets(report.aggregate(raw), raw)
        if goal["target"].startswith("event→first step p50 (in process")
    ]
    assert len(shown) == 2 and all("floor's 1 commit" in text for text in shown), shown
