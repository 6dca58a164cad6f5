"""A worker process for the multi-process workload: python -m bench.workers URL CONCURRENCY STEPS.

Prints READY once its worker runs, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import stepstone

from .stepstone_runner import define_step_loop


async def serve(url: str, concurrency: int, steps: int) -> None:
    app = stepstone.App("bench", database=url)
    define_step_loop(app, "concurrent", steps)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with app.worker(concurrency=concurrency):
            print("READY", flush=True)
            await stop.wait()
    finally:
        await app.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
