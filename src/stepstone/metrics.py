"""Prometheus metrics of this process (the optional extra `stepstone[metrics]`).

The engine reports a few facts here (a run started or ended, a step ended, a checkpoint
committed, a claim answered, a lease lost, a run taken over, events taken in); without
prometheus-client each call does nothing. The backlog gauges are read from the database
when scraped (see `server/metrics.py`). Metric names follow the Prometheus conventions;
docs/operations.md lists them.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

ENABLED = importlib.util.find_spec("prometheus_client") is not None

# seconds: from a checkpoint's milliseconds to a long step's hour
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DURATION = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)
_ATTEMPTS = (1, 2, 3, 4, 5, 6, 8, 11, 16, 21)

if TYPE_CHECKING or ENABLED:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    REGISTRY = CollectorRegistry(auto_describe=True)
    RUNS_STARTED = Counter(
        "stepstone_runs_started",
        "Runs started (their first claim), by function.",
        ["function"],
        registry=REGISTRY,
    )
    RUNS = Counter(
        "stepstone_runs",
        "Runs ended, by function and status (completed, failed, cancelled).",
        ["function", "status"],
        registry=REGISTRY,
    )
    RUN_SECONDS = Histogram(
        "stepstone_run_duration_seconds",
        "From a run's start to its end, sleeps and waits included, by function and status.",
        ["function", "status"],
        buckets=_DURATION,
        registry=REGISTRY,
    )
    STEP_SECONDS = Histogram(
        "stepstone_step_duration_seconds",
        "From a step's first attempt to its end, by function and status.",
        ["function", "status"],
        buckets=_DURATION,
        registry=REGISTRY,
    )
    STEP_ATTEMPTS = Histogram(
        "stepstone_step_attempts",
        "Attempts a step took to end, by function and status.",
        ["function", "status"],
        buckets=_ATTEMPTS,
        registry=REGISTRY,
    )
    EVENTS = Counter(
        "stepstone_events_received",
        "Events taken in by this process (sends, HTTP, a step's send_event, cron).",
        registry=REGISTRY,
    )
    CHECKPOINT_SECONDS = Histogram(
        "stepstone_checkpoint_seconds",
        "How long a step's checkpoint took to commit.",
        buckets=_LATENCY,
        registry=REGISTRY,
    )
    CLAIM_SECONDS = Histogram(
        "stepstone_claim_seconds",
        "How long a worker's claim of due runs took.",
        buckets=_LATENCY,
        registry=REGISTRY,
    )
    LEASES_LOST = Counter(
        "stepstone_leases_lost",
        "Runs this process's workers lost to another worker (their lease had expired).",
        registry=REGISTRY,
    )
    TAKEN_OVER = Counter(
        "stepstone_runs_taken_over",
        "Runs this process's workers took over from another worker whose lease had expired.",
        registry=REGISTRY,
    )
    RELEASED = Counter(
        "stepstone_runs_released",
        "Runs a stopping worker handed back to the queue.",
        registry=REGISTRY,
    )
    WORKERS = Gauge("stepstone_workers", "Workers running in this process.", registry=REGISTRY)
    JOBS_DUE = Gauge(
        "stepstone_jobs_due",
        "Runs due now and not claimed (the backlog), read from the database when scraped.",
        registry=REGISTRY,
    )
    OLDEST_DUE = Gauge(
        "stepstone_oldest_due_seconds",
        "How long the oldest due run has waited for a worker (0: none waits).",
        registry=REGISTRY,
    )


def run_started(function_id: str) -> None:
    if ENABLED:
        RUNS_STARTED.labels(function_id).inc()


def run_ended(function_id: str, status: str, seconds: float | None) -> None:
    if ENABLED:
        RUNS.labels(function_id, status).inc()
        if seconds is not None:
            RUN_SECONDS.labels(function_id, status).observe(max(0.0, seconds))


def step_ended(function_id: str, status: str, seconds: float | None, attempts: int) -> None:
    if ENABLED:
        if seconds is not None:
            STEP_SECONDS.labels(function_id, status).observe(max(0.0, seconds))
        STEP_ATTEMPTS.labels(function_id, status).observe(attempts)


def events_received(count: int) -> None:
    if ENABLED and count:
        EVENTS.inc(count)


def checkpoint_committed(seconds: float) -> None:
    if ENABLED:
        CHECKPOINT_SECONDS.observe(seconds)


def claimed(seconds: float) -> None:
    if ENABLED:
        CLAIM_SECONDS.observe(seconds)


def lease_lost() -> None:
    if ENABLED:
        LEASES_LOST.inc()


def taken_over() -> None:
    if ENABLED:
        TAKEN_OVER.inc()


def released(count: int) -> None:
    if ENABLED and count:
        RELEASED.inc(count)


def worker_running(delta: int) -> None:
    if ENABLED:
        WORKERS.inc(delta)


def backlog(due: int, oldest_age: float) -> None:
    if ENABLED:
        JOBS_DUE.set(due)
        OLDEST_DUE.set(max(0.0, oldest_age))


def exposition() -> tuple[bytes, str]:
    """The metrics in the text format, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
