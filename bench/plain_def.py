"""Workloads 1d and 2d: the sequential and concurrent workloads with a plain `def` function
whose steps are plain `def` handlers. stepstone runs the function on a thread of its own
and each handler in its thread pool, so every step hops threads; users write both kinds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import stepstone

from . import stepstone_runner


def _noop(i: int) -> int:
    return i


def define_def_step_loop(
    app: stepstone.App, function_id: str, steps: int, returned: Callable[[], None] = lambda: None
) -> None:
    """The step loop of bench.stepstone_runner.define_step_loop, written with `def`."""
    loop = asyncio.get_running_loop()  # the tally lives on the event loop, not in threads

    @app.function(id=function_id, trigger=f"bench/{function_id}")
    def run(ctx: stepstone.Context) -> int:
        count = int(ctx.event.data.get("steps", steps))
        for i in range(count):
            ctx.step.run(f"s{i}", _noop, i)
        loop.call_soon_threadsafe(returned)
        return count


async def sequential(url: str, steps: int) -> dict[str, Any]:
    return await stepstone_runner.sequential(url, steps, define=define_def_step_loop)


async def concurrent(url: str, runs: int, steps: int) -> dict[str, Any]:
    return await stepstone_runner.concurrent(url, runs, steps, define=define_def_step_loop)
