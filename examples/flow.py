"""Flow control examples: the README's "Flow control" section."""

from __future__ import annotations

from typing import Any

import stepstone

app = stepstone.App("flow")


@app.function(
    id="summarize",
    trigger="ai/summary.requested",
    concurrency=stepstone.Concurrency(2, key="event.data.account"),  # 2 at once per account
    throttle=stepstone.Throttle(limit=10, period="1m"),  # start at most 10 a minute
    priority=stepstone.Priority(run="event.data.tier == 'enterprise' ? 120 : 0"),
)
async def summarize(ctx: stepstone.Context) -> Any:
    return await ctx.step.run("summarize", lambda: ctx.event.data["text"][:20])


@app.function(
    id="sync-contacts",
    trigger="crm/contact.updated",
    debounce=stepstone.Debounce(period="5s", key="event.data.contact"),  # the last update wins
)
async def sync_contacts(ctx: stepstone.Context) -> Any:
    return ctx.event.data["contact"]


@app.function(
    id="bulk-insert",
    trigger="log/line",
    batch_events=stepstone.Batch(max_size=50, timeout="2s"),  # one run for up to 50 lines
)
async def bulk_insert(ctx: stepstone.Context) -> Any:
    lines = [event.data["line"] for event in ctx.events]
    return await ctx.step.run("insert", lambda: len(lines))


@app.function(
    id="send-receipt",
    trigger="shop/order.paid",
    idempotency="event.data.order_id",  # one receipt per order per 24 h
    rate_limit=stepstone.RateLimit(limit=5, period="1m", key="event.data.customer"),
    singleton=stepstone.Singleton(key="event.data.customer", mode="skip"),
)
async def send_receipt(ctx: stepstone.Context) -> Any:
    return ctx.event.data["order_id"]
