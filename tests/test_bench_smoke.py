"""The benchmark harness must not rot: run its stepstone workloads on a handful of steps.

No timing is asserted; benchmarks themselves run with `make bench`, never in `make test`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.pg_cluster import PostgresCluster

bench = pytest.importorskip("bench.stepstone_runner")
sdk_bench = pytest.importorskip("bench.sdk")
report = pytest.importorskip("bench.report")
common = pytest.importorskip("bench.common")


def test_quick_harness_runs_stepstone_workloads(tmp_path: Path) -> None:
    workloads = ["sequential", "concurrent", "latency", "timers", "sleepers", "waits"]

    def fresh(name: str) -> str:
        return f"sqlite:///{tmp_path / name}.db"

    results = asyncio.run(bench.run_all(fresh, common.TINY, workloads))
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


def test_postgres_workloads_run_with_the_paired_floor_and_worker_processes(
    postgres_cluster: PostgresCluster, postgres_template: str
) -> None:
    sizes = common.TINY
    workloads = ["sequential", "concurrent_procs", "timers_paced", "waits"]

    def fresh(name: str) -> str:
        return postgres_cluster.url(postgres_cluster.create_database(template=postgres_template))

    results = asyncio.run(bench.run_all(fresh, sizes, workloads))
    for name in workloads:
        assert "error" not in results[name], (name, results[name])
    assert results["sequential"]["vs_floor_paired"] > 0
    assert results["concurrent_procs"]["worker_processes"] == sizes.worker_processes
    assert results["timers_paced"]["sent_per_s"] == sizes.timer_rate_postgres
    raw = {
        "sizes": sizes.to_dict(),
        "cells": [{"system": "stepstone", "backend": "postgres", "results": results, "rep": 0}],
    }
    goals = report.targets(report.aggregate(raw), raw)
    assert any("PostgreSQL" in goal["target"] for goal in goals)


def test_the_intake_workload_serves_with_stepstones_own_server(tmp_path: Path) -> None:
    """The intake workloads, keep-alive over one connection included, run to the end."""
    results = bench.run_all(lambda name: f"sqlite:///{tmp_path / name}.db", common.TINY, ["intake"])
    intake = asyncio.run(results)["intake"]
    assert "error" not in intake, intake
    assert intake["keepalive"]["n"] > 0
    assert intake["single"]["events"] >= common.TINY.intake_events


def test_sdk_workload_runs_native_and_both_sdk_apps(tmp_path: Path) -> None:
    """Workload 7 on a handful of runs: the same function natively and in the Python and
    npm SDK apps (the pinned SDKs of tests/sdk/harness.py), and the HTTP floor."""
    sizes = common.TINY

    def fresh(name: str) -> str:
        return f"sqlite:///{tmp_path / name}.db"

    results = asyncio.run(sdk_bench.run_all(fresh, sizes, sdk_bench.WORKLOADS))
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
