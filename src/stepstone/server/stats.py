"""A function's recent runs as counts by status and duration percentiles, per time bucket."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from ..records import Run
from . import models

Window = Literal["hour", "day"]
WINDOWS: list[tuple[Window, float, int]] = [("hour", 3600.0, 12), ("day", 86400.0, 24)]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (0.5: the median) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _summary(runs: Sequence[Run]) -> tuple[dict[str, int], float | None, float | None]:
    counts = Counter(run.status.value for run in runs)
    durations = [
        run.ended_at - (run.started_at or run.created_at)
        for run in runs
        if run.ended_at is not None
    ]
    return dict(counts), percentile(durations, 0.5), percentile(durations, 0.95)


def window(
    name: Window, runs: Sequence[Run], now: float, length: float, buckets: int, complete: bool
) -> models.StatsWindow:
    """The runs created in the `length` seconds before `now`, in `buckets` equal buckets."""
    since = now - length
    size = length / buckets
    inside = [run for run in runs if run.created_at >= since]
    split: list[list[Run]] = [[] for _ in range(buckets)]
    for run in inside:
        split[min(buckets - 1, int((run.created_at - since) // size))].append(run)
    counts, p50, p95 = _summary(inside)
    return models.StatsWindow(
        window=name,
        since=since,
        bucket_seconds=size,
        counts=counts,
        p50=p50,
        p95=p95,
        buckets=[
            models.StatsBucket(start=since + n * size, counts=c, p50=m, p95=h)
            for n, (c, m, h) in enumerate(_summary(b) for b in split)
        ],
        complete=complete,
    )


def function_stats(
    function_id: str, runs: Sequence[Run], now: float, complete: bool
) -> models.FunctionStats:
    """Stats of the last hour and the last day from `runs` (those of the last day, or its
    newest ones when `complete` is false)."""
    return models.FunctionStats(
        function_id=function_id,
        windows=[window(n, runs, now, length, count, complete) for n, length, count in WINDOWS],
    )
