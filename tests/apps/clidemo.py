"""Functions for the command line's tests: one that completes, one that fails with a long
error, one that retries for ever (as far as a test can tell), one with options."""

from __future__ import annotations

from typing import Any

import stepstone

app = stepstone.App("clidemo", backoff=lambda attempt: 0.05)
LONG = "the upstream answered 503: " + "service unavailable, try later; " * 8


@app.function(id="greet", trigger="demo/greet")
async def greet(ctx: stepstone.Context) -> Any:
    name = await ctx.step.run("name", lambda: ctx.event.data.get("name", "world"))
    return {"said": f"hello {name}"}


@app.function(id="broken", trigger="demo/broken", retries=0)
async def broken(ctx: stepstone.Context) -> None:
    def call() -> None:
        raise stepstone.NonRetriableError(LONG)

    await ctx.step.run("call-upstream", call)


@app.function(id="stubborn", trigger="demo/stubborn", retries=20, backoff=lambda attempt: 0.2)
async def stubborn(ctx: stepstone.Context) -> None:
    def call() -> None:
        raise ConnectionError("upstream refused the connection")

    await ctx.step.run("call-upstream", call)


@app.function(
    id="limited",
    trigger=stepstone.on_event("demo/limited", if_="event.data.n > 1"),
    concurrency=2,
)
async def limited(ctx: stepstone.Context) -> int:
    return int(ctx.event.data["n"])
