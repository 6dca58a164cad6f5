"""The seed document's examples, in Python: `make dev` serves this app."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import stepstone

app = stepstone.App("shop")


async def copy_all_images_to_s3(urls: list[str]) -> list[str]:
    await asyncio.sleep(0.01)  # stands in for the uploads
    return [f"https://bucket.example/{url.rsplit('/', 1)[-1]}" for url in urls]


@app.function(id="import-product-images", trigger="shop/product.imported")
async def import_product_images(ctx: stepstone.Context) -> dict[str, Any]:
    uploaded = await ctx.step.run(
        "copy-images-to-s3", copy_all_images_to_s3, ctx.event.data.get("imageURLs", [])
    )
    return {"copied": len(uploaded), "urls": uploaded}


@app.function(id="create-user", trigger="shop/user.signed-up")
async def create_user(ctx: stepstone.Context) -> dict[str, Any]:
    # Steps created before any await run in parallel, like Promise.all.
    user = await ctx.step.run(
        "create-user",
        lambda: {
            "id": ctx.event.data.get("email", "anonymous"),
            "created_at": datetime.now(UTC),
        },
    )
    await asyncio.gather(
        ctx.step.run("create-subscription", lambda: {"plan": "free"}),
        ctx.step.run("add-to-crm", lambda: True),
        ctx.step.run("send-welcome-email", lambda: "queued"),
    )
    return {"user": user}


@app.function(id="transform-data", trigger="shop/data.*")
def transform_data(ctx: stepstone.Context) -> int:
    # A sync function: ctx.step.run returns the value directly.
    rows = ctx.step.run("get-api-data", lambda: [1, 2, 3])
    total = ctx.step.run("transform", lambda: sum(rows))
    ctx.step.run("insert-data", lambda: None)  # returning data is optional
    return int(total)
