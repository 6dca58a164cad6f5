"""Prometheus metrics of this process (the optional extra `stepstone[metrics]`).

The engine reports a few facts here (a run started or ended, a step ended, a checkpoint
committed, a claim answered, a lease lost, a run taken over, events taken in); without
prometheus-client each call does nothing. The backlog gauges are read from the database
when scraped (see `server/metrics.py`). Metric names follow the Prometheus conventions;
docs/operations.md lists them.
"""

from __future__ import annotations

import bisect
import importlib.util
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .records import StepRecord, StepStatus

ENABLED = importlib.util.find_spec("prometheus_client") is not None

# seconds: from a checkpoint's milliseconds to a long step's hour
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DURATION = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)
_ATTEMPTS = (1, 2, 3, 4, 5, 6, 8, 11, 16, 21)


class _Histogram:
    """A histogram the engine observes on every checkpoint, cheaply: bucket counts and a
    sum per label values, under one lock, handed to prometheus-client as a metric family
    when scraped. prometheus-client's own Histogram runs some 150 bytecodes per
    observation (a lock and a call per bucket, sum and check), about an eighth of a
    step's whole cost in a busy worker (bench/FINDINGS.md)."""

    def __init__(self, name: str, doc: str, labelnames: Sequence[str], bounds: Sequence[float]):
        self.name, self.doc, self.labelnames = name, doc, list(labelnames)
        self.bounds = sorted(float(bound) for bound in bounds)
        # per label values: a count per bucket (the last one +Inf), then the sum
        self._series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, value: float, labels: tuple[str, ...] = ()) -> None:
        with _LOCK:
            self.add(value, labels)

    def add(self, value: float, labels: tuple[str, ...]) -> None:
        """observe, for a caller that holds _LOCK (several observations under one)."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self.bounds) + 2)
        series[bisect.bisect_left(self.bounds, value)] += 1  # the first bucket whose le holds it
        series[-1] += value

    def family(self) -> Any:
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        with _LOCK:
            taken = [(labels, list(series)) for labels, series in self._series.items()]
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        edges = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        for labels, series in sorted(taken):
            running, buckets = 0.0, []
            for edge, count in zip(edges, series, strict=False):
                running += count
                buckets.append((edge, running))
            family.add_metric(list(labels), buckets, sum_value=series[-1])
        return family


_LOCK = threading.Lock()


# checkpoints not counted yet: (function id, step, seconds). Every step makes one; a
# deque's append is one atomic call, and the histograms take them in CHECKPOINTS_FOLDED
# at a time, or when scraped (the lock and three observations a step were a twentieth of
# a step's cost)
_checkpoints: deque[tuple[str, StepRecord, float]] = deque()
CHECKPOINTS_FOLDED = 256


def fold_checkpoints() -> None:
    """The checkpoints waiting, into their histograms (thread-safe: each is taken once)."""
    take, ended = _checkpoints.popleft, (StepStatus.COMPLETED, StepStatus.FAILED)
    with _LOCK:
        while True:
            try:
                function_id, step, seconds = take()
            except IndexError:
                return
            CHECKPOINT_SECONDS.add(seconds, ())
            if step.status in ended:
                labels = (function_id, step.status)
                if step.ended_at is not None and step.started_at is not None:
                    STEP_SECONDS.add(max(0.0, step.ended_at - step.started_at), labels)
                STEP_ATTEMPTS.add(step.attempts, labels)


class _Histograms:
    """The collector of every _Histogram, registered with the metrics' registry."""

    def __init__(self, *histograms: _Histogram) -> None:
        self._histograms = histograms

    def collect(self) -> Iterator[Any]:
        fold_checkpoints()
        for histogram in self._histograms:
            yield histogram.family()


if TYPE_CHECKING or ENABLED:
    from prometheus_client import CollectorRegistry, Counter, Gauge

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
    RUN_SECONDS = _Histogram(
        "stepstone_run_duration_seconds",
        "From a run's start to its end, sleeps and waits included, by function and status.",
        ["function", "status"],
        _DURATION,
    )
    STEP_SECONDS = _Histogram(
        "stepstone_step_duration_seconds",
        "From a step's first attempt to its end, by function and status.",
        ["function", "status"],
        _DURATION,
    )
    STEP_ATTEMPTS = _Histogram(
        "stepstone_step_attempts",
        "Attempts a step took to end, by function and status.",
        ["function", "status"],
        _ATTEMPTS,
    )
    EVENTS = Counter(
        "stepstone_events_received",
        "Events taken in by this process (sends, HTTP, a step's send_event, cron).",
        registry=REGISTRY,
    )
    CHECKPOINT_SECONDS = _Histogram(
        "stepstone_checkpoint_seconds",
        "How long a step's checkpoint took to commit.",
        (),
        _LATENCY,
    )
    CLAIM_SECONDS = _Histogram(
        "stepstone_claim_seconds",
        "How long a worker's claim of due runs took.",
        (),
        _LATENCY,
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
    REGISTRY.register(
        _Histograms(RUN_SECONDS, STEP_SECONDS, STEP_ATTEMPTS, CHECKPOINT_SECONDS, CLAIM_SECONDS)
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


# each counter's child per label values: `labels()` takes a lock and builds a key on
# every call
_children: dict[tuple[object, str, str], Any] = {}


def _child(metric: Any, function_id: str, status: str = "") -> Any:
    key = (metric, function_id, status)
    child = _children.get(key)
    if child is None:
        child = metric.labels(function_id, status) if status else metric.labels(function_id)
        _children[key] = child
    return child


def run_started(function_id: str) -> None:
    if ENABLED:
        _child(RUNS_STARTED, function_id).inc()


def run_ended(function_id: str, status: str, seconds: float | None) -> None:
    if ENABLED:
        _child(RUNS, function_id, status).inc()
        if seconds is not None:
            RUN_SECONDS.observe(max(0.0, seconds), (function_id, status))


def checkpointed(function_id: str, step: StepRecord, seconds: float) -> None:
    """A step's checkpoint committed in `seconds`; a step that ended is counted too.
    Called only when ENABLED (once per checkpoint: the caller checks)."""
    _checkpoints.append((function_id, step, seconds))
    if len(_checkpoints) >= CHECKPOINTS_FOLDED:
        fold_checkpoints()


def events_received(count: int) -> None:
    if ENABLED and count:
        EVENTS.inc(count)


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
