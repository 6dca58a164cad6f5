"""Flow control through the public API: each test would fail without its option."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import stepstone
from tests.helpers import make_app


class Gauge:
    """Counts handlers executing at once, per key and overall."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.order: list[Any] = []

    def enter(self, key: str = "all") -> None:
        with self._lock:
            for k in {key, "all"}:
                self.now[k] = self.now.get(k, 0) + 1
                self.peak[k] = max(self.peak.get(k, 0), self.now[k])

    def leave(self, key: str = "all") -> None:
        with self._lock:
            for k in {key, "all"}:
                self.now[k] -= 1


async def _send_all(app: stepstone.App, events: list[dict[str, Any]]) -> list[str]:
    ids = await app.send(events)
    run_ids = []
    for event_id in ids:
        run_ids += [r.id for r in await app.runs_for_event(event_id)]
    return run_ids


async def _wait_all(
    app: stepstone.App, run_ids: list[str], timeout: float = 30
) -> list[stepstone.Run]:
    return [await app.wait_for_run(r, timeout=timeout) for r in run_ids]


async def test_concurrency_limits_steps_executing_at_once(database_url: str) -> None:
    app = make_app(database_url)
    gauge = Gauge()

    @app.function(id="limited", trigger="lim/go", concurrency=2)
    async def limited(ctx: stepstone.Context) -> Any:
        async def work() -> None:
            gauge.enter()
            await asyncio.sleep(0.1)
            gauge.leave()

        await ctx.step.run("work", work)

    async with app.worker():
        runs = await _send_all(app, [{"name": "lim/go"} for _ in range(10)])
        done = await _wait_all(app, runs)
    await app.close()
    assert all(r.status == "completed" for r in done)
    assert gauge.peak["all"] == 2
    assert any(h.kind == "concurrency.waiting" for r in done for h in r.history)


async def test_one_claim_of_runs_with_and_without_a_limit_keeps_the_limit(
    database_url: str,
) -> None:
    """Runs of a limited function and of a plain one, queued together before the worker
    starts, are found by the same claims (PostgreSQL leases the plain ones in the
    statement that finds them, the gate decides the others): the plain ones all start at
    once, the limited ones one at a time."""
    app = make_app(database_url)
    gauge = Gauge()

    async def work(key: str) -> None:
        gauge.enter(key)
        await asyncio.sleep(0.2)
        gauge.leave(key)

    @app.function(id="limited", trigger="mix/go", concurrency=1)
    async def limited(ctx: stepstone.Context) -> Any:
        await ctx.step.run("work", work, "limited")

    @app.function(id="plain", trigger="mix/go")
    async def plain(ctx: stepstone.Context) -> Any:
        await ctx.step.run("work", work, "plain")

    runs = await _send_all(app, [{"name": "mix/go"} for _ in range(4)])  # 4 of each
    async with app.worker(concurrency=20):
        done = await _wait_all(app, runs)
    await app.close()
    assert len(done) == 8 and all(r.status == "completed" for r in done)
    assert gauge.peak["limited"] == 1
    assert gauge.peak["plain"] == 4


async def test_keyed_concurrency_lets_other_keys_proceed(database_url: str) -> None:
    app = make_app(database_url)
    gauge = Gauge()

    @app.function(
        id="per-user",
        trigger="user/go",
        concurrency=stepstone.Concurrency(1, key="event.data.user"),
    )
    async def per_user(ctx: stepstone.Context) -> Any:
        user = ctx.event.data["user"]

        async def work() -> None:
            gauge.enter(user)
            await asyncio.sleep(0.15)
            gauge.leave(user)

        await ctx.step.run("work", work)

    async with app.worker():
        events = [{"name": "user/go", "data": {"user": u}} for u in ("a", "b", "a", "b", "a", "b")]
        await _wait_all(app, await _send_all(app, events))
    await app.close()
    assert gauge.peak["a"] == 1 and gauge.peak["b"] == 1
    assert gauge.peak["all"] == 2  # different keys ran side by side


async def test_throttle_delays_but_runs_all(database_url: str) -> None:
    app = make_app(database_url)
    starts: list[float] = []

    @app.function(id="throttled", trigger="thr/go", throttle=stepstone.Throttle(2, "1s"))
    async def throttled(ctx: stepstone.Context) -> Any:
        await ctx.step.run("start", lambda: starts.append(time.monotonic()))

    async with app.worker():
        sent = time.monotonic()
        runs = await _send_all(app, [{"name": "thr/go"} for _ in range(4)])
        done = await _wait_all(app, runs)
    await app.close()
    assert all(r.status == "completed" for r in done)
    starts.sort()
    # two per second, evenly spread: 0, 0.5, 1.0, 1.5 s after the send (a loaded machine
    # may start the first ones late, never the last one early)
    assert starts[-1] - sent >= 1.4
    assert any(h.kind == "throttled" for r in done for h in r.history)


async def test_rate_limit_drops_and_records_skipped_runs(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(
        id="rated",
        trigger="rate/go",
        rate_limit={"limit": 2, "period": "1m", "key": "event.data.k"},
    )
    async def rated(ctx: stepstone.Context) -> Any:
        return "ran"

    async with app.worker():
        runs = await _send_all(app, [{"name": "rate/go", "data": {"k": 1}} for _ in range(5)])
        other = await _send_all(app, [{"name": "rate/go", "data": {"k": 2}}])
        done = await _wait_all(app, runs + other)
    await app.close()
    statuses = [r.status.value for r in done]
    assert statuses.count("completed") == 3 and statuses.count("skipped") == 3
    skipped = next(r for r in done if r.status == "skipped")
    assert "rate limit" in skipped.history[0].data["reason"]


async def test_debounce_runs_once_with_the_last_event(database_url: str) -> None:
    app = make_app(database_url)
    seen: list[Any] = []

    @app.function(
        id="debounced", trigger="deb/go", debounce=stepstone.Debounce("1s", key="event.data.k")
    )
    async def debounced(ctx: stepstone.Context) -> Any:
        seen.append((ctx.event.data["k"], ctx.event.data["n"]))

    async with app.worker():
        for n in range(3):
            await app.send({"name": "deb/go", "data": {"k": "x", "n": n}})
        await app.send({"name": "deb/go", "data": {"k": "y", "n": 9}})
        await asyncio.sleep(0.2)
        assert seen == []  # nothing runs before the quiet period
        deadline = time.monotonic() + 15
        while len(seen) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        page = await app.list_runs(function_id="debounced")
    await app.close()
    assert sorted(seen) == [("x", 2), ("y", 9)]
    assert len(page) == 2


async def test_batches_collect_up_to_max_size_or_timeout(database_url: str) -> None:
    app = make_app(database_url)
    sizes: list[int] = []

    @app.function(
        id="batched", trigger="bat/go", batch_events=stepstone.Batch(max_size=3, timeout="1s")
    )
    async def batched(ctx: stepstone.Context) -> Any:
        sizes.append(len(ctx.events))
        return [e.data["n"] for e in ctx.events]

    async with app.worker():
        await app.send([{"name": "bat/go", "data": {"n": n}} for n in range(7)])
        deadline = time.monotonic() + 15
        while sum(sizes) < 7:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        page = await app.list_runs(function_id="batched")
        for run in page:  # the last batch's function has run; its end may not be saved
            await app.wait_for_run(run.id)
        page = await app.list_runs(function_id="batched")
    await app.close()
    assert sorted(sizes) == [1, 3, 3]
    outputs = sorted(r.output for r in page if r.output)
    assert outputs == [[0, 1, 2], [3, 4, 5], [6]]


async def test_priority_reorders_a_backlog(database_url: str) -> None:
    app = make_app(database_url)
    order: list[str] = []

    @app.function(
        id="prioritized",
        trigger="pri/go",
        concurrency=1,
        priority=stepstone.Priority(run="event.data.p"),
    )
    async def prioritized(ctx: stepstone.Context) -> Any:
        async def work() -> None:
            order.append(ctx.event.data["name"])
            await asyncio.sleep(0.1)

        await ctx.step.run("work", work)

    async with app.worker():
        first = await _send_all(app, [{"name": "pri/go", "data": {"name": "blocker", "p": 0}}])
        while not order:
            await asyncio.sleep(0.01)
        rest = await _send_all(
            app,
            [{"name": "pri/go", "data": {"name": f"low{i}", "p": 0}} for i in range(3)]
            + [{"name": "pri/go", "data": {"name": "high", "p": 120}}],
        )
        await _wait_all(app, first + rest)
    await app.close()
    assert order[0] == "blocker" and order[1] == "high"
    assert order[2:] == ["low0", "low1", "low2"]


async def test_idempotency_keeps_one_run_per_key(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="once", trigger="once/go", idempotency="event.data.user")
    async def once(ctx: stepstone.Context) -> Any:
        return ctx.event.data["n"]

    async with app.worker():
        runs = await _send_all(
            app,
            [{"name": "once/go", "data": {"user": "u1", "n": n}} for n in range(3)]
            + [{"name": "once/go", "data": {"user": "u2", "n": 9}}],
        )
        done = await _wait_all(app, runs)
    await app.close()
    assert [r.status.value for r in done] == ["completed", "skipped", "skipped", "completed"]
    assert [r.output for r in done if r.status == "completed"] == [0, 9]


@pytest.mark.parametrize("mode", ["skip", "cancel"])
async def test_singleton_keeps_one_active_run(database_url: str, mode: str) -> None:
    app = make_app(database_url)

    @app.function(
        id="single",
        trigger="single/go",
        singleton=stepstone.Singleton(key="event.data.k", mode=mode),
    )
    async def single(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("hold", 0.5)
        return ctx.event.data["n"]

    async with app.worker():
        [first] = await _send_all(app, [{"name": "single/go", "data": {"k": 1, "n": 1}}])
        await asyncio.sleep(0.2)
        [second] = await _send_all(app, [{"name": "single/go", "data": {"k": 1, "n": 2}}])
        one, two = await _wait_all(app, [first, second])
        # once the active run ended, the key is free again
        [third] = await _send_all(app, [{"name": "single/go", "data": {"k": 1, "n": 3}}])
        three = await app.wait_for_run(third)
    await app.close()
    if mode == "skip":
        assert (one.status, two.status) == ("completed", "skipped")
    else:
        assert (one.status, two.status) == ("cancelled", "completed")
    assert three.status == "completed" and three.output == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency[0].limit"),
        ({"concurrency": [1, 2, 3]}, "at most 2 concurrency"),
        ({"throttle": {"limit": 1, "period": "8d"}}, "throttle.period"),
        ({"rate_limit": stepstone.RateLimit(1, "2d")}, "rate_limit.period"),
        ({"debounce": {"period": "0.5s"}}, "debounce.period"),
        ({"batch_events": {"max_size": 10, "timeout": "2m"}}, "batch_events.timeout"),
        ({"priority": {"run": "event.data.p +"}}, "priority.run"),
        ({"idempotency": "event.data.user =="}, "idempotency"),
        ({"singleton": {"mode": "queue"}}, "singleton.mode"),
        ({"concurrency": {"limit": 1, "scope": "env"}}, "needs a key"),
        ({"throttle": {"limit": 1, "period": 1, "color": "red"}}, "unknown key(s) color"),
    ],
)
def test_invalid_options_are_refused_when_defined(options: dict[str, Any], message: str) -> None:
    app = stepstone.App("bad", database="memory://")
    with pytest.raises(stepstone.ConfigError) as info:
        app.function(id="my-fn", trigger="x/y", **options)(lambda ctx: None)
    assert "my-fn" in str(info.value) and message in str(info.value)
