"""The examples the README shows run, and do what the README says."""

from __future__ import annotations

import pytest
from examples import shop

from tests.helpers import send_and_wait


@pytest.fixture
def shop_app(database_url: str):  # type: ignore[no-untyped-def]
    shop.app.database_url = database_url
    yield shop.app
    shop.app.database_url = "unused"


async def test_shop_example_functions(shop_app) -> None:  # type: ignore[no-untyped-def]
    async with shop_app.worker():
        images = await send_and_wait(
            shop_app, "shop/product.imported", {"imageURLs": ["https://x/a.png", "https://x/b.png"]}
        )
        user = await send_and_wait(shop_app, "shop/user.signed-up", {"email": "ada@example.com"})
        data = await send_and_wait(shop_app, "shop/data.refresh")
    await shop_app.close()
    assert images.output == {
        "copied": 2,
        "urls": ["https://bucket.example/a.png", "https://bucket.example/b.png"],
    }
    assert user.output["user"]["id"] == "ada@example.com"
    assert isinstance(user.output["user"]["created_at"], str)  # datetime → ISO 8601
    assert {s.id for s in user.steps} == {
        "create-user",
        "create-subscription",
        "add-to-crm",
        "send-welcome-email",
    }
    assert data.output == 6


async def test_flow_examples(database_url: str) -> None:
    from examples import flow

    flow.app.database_url = database_url
    async with flow.app.worker():
        ids = await flow.app.send(
            [{"name": "log/line", "data": {"line": f"l{i}"}} for i in range(50)]
            + [{"name": "shop/order.paid", "data": {"order_id": 7, "customer": "c"}}] * 2
        )
        [bulk] = await flow.app.runs_for_event(ids[0])
        bulk = await flow.app.wait_for_run(bulk.id)
        [first] = await flow.app.runs_for_event(ids[50])
        first = await flow.app.wait_for_run(first.id)
        [second] = await flow.app.runs_for_event(ids[51])
    await flow.app.close()
    assert bulk.output == 50  # the batch filled up: it ran at once with all 50 lines
    assert first.output == 7
    assert second.status == "skipped"  # idempotency: one receipt per order
