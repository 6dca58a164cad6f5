"""Timers on time under load: start pacing (new runs yield to the wake-ups of runs
already going) and claims ahead of a wake-up.

The pacer's decisions are checked with explicit times and a CPU clock the test moves;
the bench's timer burst measures what both are for (bench/FINDINGS.md)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import stepstone
from stepstone.engine.pacing import OVERLOADED_AHEAD, StartPacer
from tests.helpers import make_app, send_and_wait

T0 = 1000.0


class FakeCpu:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def measured(pacer: StartPacer, cpu: FakeCpu, *, rate: float, at: float) -> None:
    """Let the pacer see `rate` invocations per CPU second, measured at `at`."""
    for _ in range(100):
        pacer.finished()
    cpu.seconds += 100 / rate
    pacer.allowance(50, at)


def overloaded_pacer(share: float = 0.5) -> tuple[StartPacer, FakeCpu]:
    cpu = FakeCpu()
    pacer = StartPacer(T0, horizon=2.0, share=share, cpu=cpu)
    measured(pacer, cpu, rate=1000.0, at=T0 + 0.2)
    pacer.claimed(asked=50, got=50, started=50, allowed=None)  # it got all it asked for
    return pacer, cpu


def test_a_worker_that_keeps_up_is_not_paced() -> None:
    pacer, _ = overloaded_pacer()
    pacer.suspended("r1", T0 + 1.0, T0 + 0.2)
    pacer.claimed(asked=50, got=12, started=12, allowed=None)  # less than it asked: all due
    assert pacer.allowance(50, T0 + 0.3) is None


def test_an_overloaded_worker_with_wake_ups_due_soon_starts_new_runs_at_its_share() -> None:
    pacer, _ = overloaded_pacer(share=0.5)
    assert pacer.allowance(50, T0 + 0.2) is None  # nothing of its own wakes soon
    pacer.suspended("r1", T0 + 1.2, T0 + 0.2)
    assert pacer.allowance(50, T0 + 0.2) == 0  # from now on, paced
    # half of 1,000 invocations/s: 10 new runs in 20 ms
    assert pacer.allowance(50, T0 + 0.22) == 10
    pacer.claimed(asked=50, got=50, started=10, allowed=10)
    assert pacer.allowance(50, T0 + 0.22) == 0  # those are used up
    assert pacer.allowance(50, T0 + 0.5) == 50  # never more than one claim's worth
    pacer.claimed(asked=50, got=50, started=50, allowed=50)
    # the next claim waits for ten more: at 500 new runs/s, 20 ms
    assert abs(pacer.delay(50) - 0.02) < 1e-9


def test_a_long_sleep_does_not_pace() -> None:
    pacer, _ = overloaded_pacer()
    pacer.suspended("r1", T0 + 3600, T0 + 0.2)
    assert pacer.allowance(50, T0 + 0.3) is None


def test_pacing_ends_when_the_wake_ups_are_claimed() -> None:
    pacer, _ = overloaded_pacer()
    pacer.suspended("r1", T0 + 1.0, T0 + 0.2)
    pacer.suspended("r2", T0 + 1.1, T0 + 0.2)
    assert pacer.allowance(50, T0 + 0.3) is not None
    pacer.resumed("r1")
    assert pacer.allowance(50, T0 + 0.3) is not None  # r2 still wakes soon
    pacer.resumed("r2")
    assert pacer.allowance(50, T0 + 0.3) is None


def test_a_wake_up_long_past_is_forgotten() -> None:
    """Another worker may have served it: it paces no longer than the horizon after."""
    pacer, _ = overloaded_pacer()
    pacer.suspended("r1", T0 + 1.0, T0 + 0.2)
    assert pacer.allowance(50, T0 + 2.9) is not None
    assert pacer.allowance(50, T0 + 3.1) is None


def test_no_pacing_before_the_rate_is_known() -> None:
    cpu = FakeCpu()
    pacer = StartPacer(T0, cpu=cpu)
    pacer.suspended("r1", T0 + 1.0, T0)
    pacer.claimed(asked=50, got=50, started=50, allowed=None)
    assert pacer.allowance(50, T0 + 0.01) is None
    measured(pacer, cpu, rate=2000.0, at=T0 + 0.2)
    assert pacer.allowance(50, T0 + 0.2) == 0


async def test_a_run_claimed_ahead_of_its_wake_up_waits_for_it(database_url: str) -> None:
    """With a look-ahead longer than the sleep itself, the claim comes before the wake
    time: the worker holds the run, and the sleep still lasts its full length."""
    app = make_app(database_url)
    woke: list[tuple[float, float]] = []

    @app.function(id="napper", trigger="nap/go")
    async def napper(ctx: stepstone.Context) -> Any:
        until = await ctx.step.run("until", lambda: time.time() + 0.4)
        await ctx.step.sleep_until("nap", until)
        await ctx.step.run("woke", lambda: woke.append((until, time.time())))

    async with app.worker(claim_ahead=1.0):
        run = await send_and_wait(app, "nap/go")
    await app.close()
    assert run.status == "completed"
    [(until, at)] = woke
    assert at >= until
    nap = run.step("nap")
    assert nap is not None and nap.ended_at is not None and nap.ended_at >= until


def test_an_overloaded_worker_claims_wake_ups_further_ahead() -> None:
    pacer, _ = overloaded_pacer()
    assert pacer.look_ahead(0.02) == OVERLOADED_AHEAD
    assert pacer.look_ahead(0.9) == 0.9  # a longer look-ahead of its own stays
    pacer.claimed(asked=50, got=3, started=3, allowed=None)  # it keeps up again
    assert pacer.look_ahead(0.02) == 0.02


async def test_under_load_a_wake_up_is_claimed_ahead_and_held(database_url: str) -> None:
    """A worker busy with more runs than its slots: the sleeping run's wake-up is claimed
    well before its time (its second "started" entry), not when a slot frees after it,
    and it still wakes no earlier than its time."""
    app = make_app(database_url)
    woke: list[float] = []

    @app.function(id="napper", trigger="load/nap")
    async def napper(ctx: stepstone.Context) -> Any:
        await ctx.step.sleep("nap", 0.5)
        await ctx.step.run("woke", lambda: woke.append(time.time()))

    @app.function(id="busy", trigger="load/busy")
    async def busy(ctx: stepstone.Context) -> Any:
        await ctx.step.run("work", asyncio.sleep, 0.05)

    # 2 slots and 60 runs of 50 ms: busy for ~1.5 s, through the nap's end
    async with app.worker(concurrency=2):
        [event] = await app.send({"name": "load/nap"})
        await app.send([{"name": "load/busy"} for _ in range(60)])
        [run] = await app.runs_for_event(event)
        run = await app.wait_for_run(run.id, timeout=30)
    await app.close()
    assert run.status == "completed"
    nap = run.step("nap")
    assert nap.wake_at is not None
    claims = [entry.at for entry in run.history if entry.kind == "started"]
    assert len(claims) == 2, run.history
    # the stores' own look-ahead is 0.02 s (SQLite, memory) or 0.1 s (PostgreSQL): a
    # claim made with it is at most that far ahead
    assert nap.wake_at - claims[1] >= 0.12, (nap.wake_at, claims)
    assert woke and woke[0] >= nap.wake_at


def test_claim_ahead_is_checked() -> None:
    app = stepstone.App("t", database="memory://")
    with pytest.raises(stepstone.ConfigError, match="claim_ahead"):
        app.worker(claim_ahead=5)


def test_a_worker_that_is_never_paced_does_not_accumulate_wake_ups() -> None:
    """Short sleeps of runs claimed again since, or long past, are forgotten even when
    nothing asks whether one wakes soon (a worker that keeps up never does)."""
    pacer = StartPacer(T0, cpu=FakeCpu())
    for n in range(20_000):
        now = T0 + n * 0.001
        pacer.suspended(f"r{n}", now + 1.0, now)
        if n >= 500:
            pacer.resumed(f"r{n - 500}")  # its wake-up came and was served
    assert len(pacer._wakes) <= 4 * 1024
    assert len(pacer._waking) <= 1024
