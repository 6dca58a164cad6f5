"""A function's stats (server/stats.py): pure functions of runs and a time."""

from __future__ import annotations

from stepstone.records import Run, RunStatus
from stepstone.server.stats import function_stats, percentile

NOW = 1_700_000_000.0


def run(age: float, status: RunStatus, took: float | None) -> Run:
    created = NOW - age
    ended = None if took is None else created + 1 + took
    return Run(
        id=f"r{age}", function_id="fn", status=status, created_at=created,
        started_at=created + 1, ended_at=ended,
    )  # fmt: skip


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)
    assert percentile([5.0, 1.0, 3.0, 2.0], 0.5) == 2.0  # order does not matter


def test_windows_count_by_status_in_buckets_with_durations_of_ended_runs() -> None:
    runs = [
        run(10, RunStatus.COMPLETED, 2.0),  # the last 5 minutes
        run(20, RunStatus.FAILED, 4.0),
        run(400, RunStatus.COMPLETED, 1.0),  # 6-7 minutes ago: the bucket before
        run(200, RunStatus.SLEEPING, None),  # not ended: counted, no duration
        run(7200, RunStatus.COMPLETED, 10.0),  # two hours ago: the day only
    ]
    hour, day = function_stats("fn", runs, NOW, complete=True).windows
    assert (hour.window, hour.since, hour.bucket_seconds) == ("hour", NOW - 3600, 300)
    assert hour.counts == {"completed": 2, "failed": 1, "sleeping": 1}
    assert (hour.p50, hour.p95) == (2.0, 4.0)
    assert [b.counts for b in hour.buckets[-2:]] == [
        {"completed": 1},
        {"completed": 1, "failed": 1, "sleeping": 1},
    ]
    assert (hour.buckets[-1].p50, hour.buckets[-1].p95) == (2.0, 4.0)
    assert hour.buckets[0].counts == {} and hour.buckets[0].p50 is None
    assert day.counts == {"completed": 3, "failed": 1, "sleeping": 1}
    assert len(day.buckets) == 24 and day.buckets[-2].counts == {"completed": 1}
    assert day.p95 == 10.0
    assert function_stats("fn", runs, NOW, complete=False).windows[0].complete is False
