"""The SDK benchmark's Python app (FastAPI): a function of $BENCH_STEPS trivial steps.

Started by bench/sdk.py with the pinned Python SDK of tests/sdk/harness.py. Its first step
returns the wall time at which it ran, which the function returns: the benchmark reads
event -> first step latency from it. bench/sdk.py defines the same function natively, and
ten_steps.cjs for the npm SDK.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable

import fastapi
import inngest
import inngest.fast_api
import uvicorn

STEPS = int(os.environ.get("BENCH_STEPS", "10"))
client = inngest.Inngest(
    app_id=os.environ.get("SDK_TEST_APP_ID", "bench"), logger=logging.getLogger("bench")
)


async def now() -> float:
    return time.time()


def same(i: int) -> Callable[[], Awaitable[int]]:
    async def step() -> int:
        return i

    return step


@client.create_function(fn_id="ten-steps", trigger=inngest.TriggerEvent(event="bench/ten-steps"))
async def ten_steps(ctx: inngest.Context) -> dict[str, object]:
    count = int(ctx.event.data.get("steps", STEPS))  # type: ignore[arg-type]
    first = await ctx.step.run("s0", now)
    for i in range(1, count):
        await ctx.step.run(f"s{i}", same(i))
    return {"first": first, "steps": count}


app = fastapi.FastAPI()


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


inngest.fast_api.serve(app, client, [ten_steps])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
