"""The chaos workload: steps, retries, parallel groups, sleeps, waits and invokes.

Every handler execution appends `start`/`end`/`fail` lines to a per-process ledger, so
the harness can tell, after any number of SIGKILLs, whether a step ran again after its
result was saved.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from typing import Any

import stepstone

app = stepstone.App("chaos", backoff=lambda attempt: 0.05)
FAILURE_RATE = 0.15  # per attempt; with 8 attempts a step practically never runs out


def _ledger() -> int:
    path = os.path.join(os.environ["CHAOS_LEDGER"], f"ledger-{os.getpid()}.txt")
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


_fd: int | None = None


def record(kind: str, run_id: str, step_id: str) -> None:
    global _fd
    if _fd is None:
        _fd = _ledger()
    os.write(_fd, f"{time.time():.6f} {kind} {run_id} {step_id} {os.getpid()}\n".encode())


def work(run_id: str, step_id: str, value: Any) -> Callable[[], Any]:
    def handler() -> Any:
        record("start", run_id, step_id)
        time.sleep(random.uniform(0, 0.02))  # widens the window for a kill mid-step
        if random.random() < FAILURE_RATE:
            record("fail", run_id, step_id)
            raise ConnectionError(f"{step_id}: flaky")
        record("end", run_id, step_id)
        return value

    return handler


@app.function(id="chaos-main", trigger="chaos/go", retries=7)
async def chaos_main(ctx: stepstone.Context) -> Any:
    n = ctx.event.data["n"]
    rid = ctx.run_id
    a = await ctx.step.run("a", work(rid, "a", f"a:{n}"))
    b, c = await asyncio.gather(
        ctx.step.run("b", work(rid, "b", f"b:{n}")),
        ctx.step.run("c", work(rid, "c", f"c:{n}")),
    )
    await ctx.step.sleep("nap", 0.2)
    child = None
    if n % 4 == 0:
        child = await ctx.step.invoke("child", function="chaos-child", data={"n": n})
    signal = None
    if n % 5 == 0:
        got = await ctx.step.wait_for_event(
            "signal", event="chaos/signal", timeout="120s", if_="event.data.n == async.data.n"
        )
        signal = None if got is None else got.data["n"]
    d = await ctx.step.run("d", work(rid, "d", f"d:{n}"))
    return {"n": n, "steps": [a, b, c, d], "child": child, "signal": signal}


@app.function(id="chaos-child", retries=7)
async def chaos_child(ctx: stepstone.Context) -> Any:
    n = ctx.event.data["n"]
    return await ctx.step.run("double", work(ctx.run_id, "double", n * 2))


def expected_output(n: int) -> dict[str, Any]:
    return {
        "n": n,
        "steps": [f"a:{n}", f"b:{n}", f"c:{n}", f"d:{n}"],
        "child": n * 2 if n % 4 == 0 else None,
        "signal": n if n % 5 == 0 else None,
    }
