"""Functions and steps whose ids hold what ids may: spaces, slashes, quotes, %, #, ?, markup,
emoji and other Unicode; a step id used twice; a wildcard trigger and an invoke by id.

The HTTP, command line and browser tests serve it; `app` is for `stepstone ... MODULE:APP`.
"""

from __future__ import annotations

from typing import Any

import stepstone

PARENT = 'orders/🍕 "big" 50% #1? <b>ü</b>'
CHILD = "price it: ¿cuánto? 💶 / [bold]x[/bold]"
STEP = 'look up / "quoted" 100% #2? ☃ <i>it\'s</i> [red]'
INVOKE_STEP = "invoke 💶 &amp;"
TRIGGER = "shop/🍕 *"  # the wildcard matches any name with that prefix
EVENT = "shop/🍕 order #7? 100%"
EVENT_ID = "order/7 #? 100% ü"


def build_app(database: str | None = None) -> stepstone.App:
    app = stepstone.App("odd", database=database, backoff=lambda attempt: 0.02)

    @app.function(id=CHILD)  # no trigger: only invoked
    async def child(ctx: stepstone.Context) -> Any:
        return await ctx.step.run("compute", lambda: ctx.event.data["n"] * 2)

    @app.function(id=PARENT, trigger=TRIGGER)
    async def parent(ctx: stepstone.Context) -> Any:
        found = await ctx.step.run(STEP, lambda: ctx.event.data["n"])
        for i in range(2):
            await ctx.step.run("repeat", lambda i=i: i)
        price = await ctx.step.invoke(INVOKE_STEP, function=CHILD, data={"n": found})
        return {"price": price}

    return app


app = build_app()
