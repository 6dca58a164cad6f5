"""The app the HTTP and browser tests serve: steps with outputs, retries, sleeps, failures.

`stepstone dev tests.server_app:app` serves it too.
"""

from __future__ import annotations

from typing import Any

import stepstone

_attempts: dict[str, int] = {}


def _raise(message: str) -> None:
    raise stepstone.NonRetriableError(message)


def build_app(database: str | None = None) -> stepstone.App:
    """A fresh App with the functions below, on `database`."""
    app = stepstone.App("served", database=database, backoff=lambda attempt: 0.05)

    @app.function(id="greet", trigger="test/greet")
    async def greet(ctx: stepstone.Context) -> dict[str, Any]:
        name = ctx.event.data.get("name", "world")
        hello = await ctx.step.run("say-hello", lambda: {"greeting": f"hello {name}"})
        shout = await ctx.step.run("shout", lambda: hello["greeting"].upper())
        return {"said": shout}

    @app.function(id="nap", trigger="test/nap")
    async def nap(ctx: stepstone.Context) -> str:
        await ctx.step.run("before", lambda: "awake")
        await ctx.step.sleep("wait", 3600)
        return "rested"

    @app.function(id="flaky", trigger="test/flaky", retries=3)
    async def flaky(ctx: stepstone.Context) -> int:
        def fails_twice() -> int:
            count = _attempts[ctx.run_id] = _attempts.get(ctx.run_id, 0) + 1
            if count < 3:
                raise RuntimeError(f"attempt {count} failed")
            return count

        return await ctx.step.run("unsteady", fails_twice)

    @app.function(id="broken", trigger="test/broken", retries=0)
    async def broken(ctx: stepstone.Context) -> None:
        await ctx.step.run("explode", _raise, ctx.event.data.get("message", "boom"))

    @app.function(id="echo", trigger=stepstone.on_event("test/echo", if_="event.name != ''"))
    async def echo(ctx: stepstone.Context) -> Any:
        return await ctx.step.run("echo", lambda: ctx.event.data)

    @app.function(
        id="charge",
        name="Charge a card",
        trigger="billing/charge",
        retries=2,
        concurrency=stepstone.Concurrency(2, key="event.data.account"),
        throttle=stepstone.Throttle(10, "1m", key="event.data.account"),
        cancel_on=stepstone.Cancel("billing/refunded", if_="async.data.id == event.data.id"),
        timeouts=stepstone.Timeouts(finish="1h"),
    )
    async def charge(ctx: stepstone.Context) -> dict[str, Any]:
        amount = ctx.event.data.get("amount", 0)
        return await ctx.step.run("charge", lambda: {"charged": amount})

    @app.function(id="report", trigger="test/report")
    async def report(ctx: stepstone.Context) -> Any:
        rows = [{"n": n, "label": f"row {n}"} for n in range(40)]
        return await ctx.step.run("build", lambda: {"rows": rows})

    @app.function(id="hourly", trigger=stepstone.on_cron("0 * * * *", tz="Europe/Paris"))
    async def hourly(ctx: stepstone.Context) -> None:
        return None

    return app


app = build_app()
