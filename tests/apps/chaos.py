"""The chaos workload: steps, retries, parallel groups, sleeps, waits and invokes.

Every handler execution, and every time the function is handed a step's result, appends a
line to one ledger file shared by all worker processes (tests/ledger.py). The ledger lives
outside the database: a build that ran a step twice, or overwrote a saved result, cannot
rewrite it, and the order of its lines is the order things happened in.

With CHAOS_SELF_STOP set, a worker stops itself (SIGSTOP) now and then at the places a
paused worker is most dangerous: inside a step before and after its side effect, between
two steps, and after the function returned but before its end is written. The harness resumes it
past its lease.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from typing import Any

import stepstone
from tests.ledger import Ledger

app = stepstone.App("chaos", backoff=lambda attempt: 0.05)
FAILURE_RATE = 0.15  # per attempt; with 8 attempts a step practically never runs out
_ledger: Ledger | None = None


def ledger() -> Ledger:
    global _ledger
    if _ledger is None:
        _ledger = Ledger(os.environ["CHAOS_LEDGER"], os.environ.get("WORKER_NAME", "?"))
    return _ledger


def _maybe_stop_self() -> None:
    if random.random() < float(os.environ.get("CHAOS_SELF_STOP", "0")):
        os.kill(os.getpid(), signal.SIGSTOP)


def work(ctx: stepstone.Context, step_id: str, value: Any) -> Callable[[], Any]:
    def handler() -> Any:
        _maybe_stop_self()  # the engine decided to run it; its side effect is not done yet
        token = ledger().started(ctx.run_id, step_id, ctx.attempt)
        time.sleep(random.uniform(0, 0.02))  # widens the window for a kill mid-step
        if random.random() < FAILURE_RATE:
            ledger().failed(ctx.run_id, step_id, ctx.attempt, token)
            raise ConnectionError(f"{step_id}: flaky")
        ledger().ended(ctx.run_id, step_id, ctx.attempt, token)
        _maybe_stop_self()  # the side effect is done, its result not yet saved
        return {"value": value, "token": token}

    return handler


def seen(ctx: stepstone.Context, step_id: str, result: dict[str, Any]) -> Any:
    """The step's value, once the ledger says the function was handed it (and which)."""
    ledger().seen(ctx.run_id, step_id, result["token"])
    return result["value"]


@app.function(id="chaos-main", trigger="chaos/go", retries=7)
async def chaos_main(ctx: stepstone.Context) -> Any:
    n = ctx.event.data["n"]
    a = seen(ctx, "a", await ctx.step.run("a", work(ctx, "a", f"a:{n}")))
    _maybe_stop_self()  # between two steps
    b, c = await asyncio.gather(
        ctx.step.run("b", work(ctx, "b", f"b:{n}")),
        ctx.step.run("c", work(ctx, "c", f"c:{n}")),
    )
    b, c = seen(ctx, "b", b), seen(ctx, "c", c)
    await ctx.step.sleep("nap", 0.2)
    child = None
    if n % 4 == 0:
        child = await ctx.step.invoke("child", function="chaos-child", data={"n": n})
    signal_n = None
    if n % 5 == 0:
        got = await ctx.step.wait_for_event(
            "signal", event="chaos/signal", timeout="120s", if_="event.data.n == async.data.n"
        )
        signal_n = None if got is None else got.data["n"]
    d = seen(ctx, "d", await ctx.step.run("d", work(ctx, "d", f"d:{n}")))
    _maybe_stop_self()  # the function has returned; its end is not yet written
    return {"n": n, "steps": [a, b, c, d], "child": child, "signal": signal_n}


@app.function(id="chaos-child", retries=7)
async def chaos_child(ctx: stepstone.Context) -> Any:
    n = ctx.event.data["n"]
    return seen(ctx, "double", await ctx.step.run("double", work(ctx, "double", n * 2)))


def expected_output(n: int) -> dict[str, Any]:
    return {
        "n": n,
        "steps": [f"a:{n}", f"b:{n}", f"c:{n}", f"d:{n}"],
        "child": n * 2 if n % 4 == 0 else None,
        "signal": n if n % 5 == 0 else None,
    }
