"""A function that sleeps, then saves a step: its wake-up needs a writable database."""

from __future__ import annotations

from typing import Any

import stepstone

app = stepstone.App("napper", backoff=lambda attempt: 0.05)


@app.function(id="napper", trigger="napper/go")
async def napper(ctx: stepstone.Context) -> Any:
    await ctx.step.sleep("nap", 1.5)
    return await ctx.step.run("after", lambda: "awake")
