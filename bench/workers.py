"""A worker process for the multi-process workload: python -m bench.workers URL CONCURRENCY.

Prints READY once its worker runs, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import stepstone

from .stepstone_runner import _noop


async def serve(url: str, concurrency: int) -> None:
    app = stepstone.App("bench", database=url)

    @app.function(id="concurrent", trigger="bench/concurrent")
    async def run(ctx: stepstone.Context) -> int:
        steps = int(ctx.event.data.get("steps", 10))
        for i in range(steps):
            await ctx.step.run(f"s{i}", _noop, i)
        return steps

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with app.worker(concurrency=concurrency):
            print("READY", flush=True)
            await stop.wait()
    finally:
        await app.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))
