"""A send hands its new runs to an idle worker of the same process, in the send's own
transaction: the run starts with no claim in between, and is leased, started and
recorded exactly as a claimed run is."""

from __future__ import annotations

import asyncio
from typing import Any

import stepstone
from stepstone.store import Claim
from tests.helpers import make_app


async def _claims_of(app: stepstone.App) -> list[str]:
    """The run ids the worker's claims return from now on."""
    store = await app.store()
    claimed: list[str] = []
    claim = store.claim

    async def counting(*args: Any, **kwargs: Any) -> list[Claim]:
        found = await claim(*args, **kwargs)
        claimed.extend(c.run.id for c in found)
        return found

    store.claim = counting  # type: ignore[method-assign]
    return claimed


async def test_a_run_sent_to_an_idle_worker_of_the_process_is_not_claimed(
    database_url: str,
) -> None:
    app = make_app(database_url)

    @app.function(id="greet", trigger="greet/go")
    async def greet(ctx: stepstone.Context) -> Any:
        return await ctx.step.run("hello", lambda: f"hello {ctx.event.data['name']}")

    async with app.worker() as worker:
        claimed = await _claims_of(app)
        [event_id] = await app.send({"name": "greet/go", "data": {"name": "Ada"}})
        [run] = await app.runs_for_event(event_id)
        done = await app.wait_for_run(run.id)
        full = await app.get_run(run.id)
    await app.close()
    assert done.status == "completed" and done.output == "hello Ada"
    assert run.id not in claimed
    assert full is not None and full.started_at is not None
    kinds = [h.kind for h in full.history]
    assert kinds[:2] == ["queued", "started"] and kinds.count("started") == 1
    assert full.history[1].data == {"worker": worker.id}


async def test_runs_with_flow_control_or_from_another_loop_are_claimed(
    database_url: str,
) -> None:
    app = make_app(database_url)

    @app.function(id="plain", trigger="mixed/go")
    async def plain(ctx: stepstone.Context) -> Any:
        return "plain"

    @app.function(id="limited", trigger="mixed/go", concurrency=1)
    async def limited(ctx: stepstone.Context) -> Any:
        return "limited"

    async with app.worker():
        claimed = await _claims_of(app)
        [first] = await app.send({"name": "mixed/go"})
        # the blocking API sends from a loop of its own: the worker's claim takes them
        [second] = await asyncio.to_thread(app.send_sync, {"name": "mixed/go"})
        runs = {}
        for event_id in (first, second):
            for run in await app.runs_for_event(event_id):
                runs[(event_id, run.function_id)] = await app.wait_for_run(run.id)
    await app.close()
    assert {r.status for r in runs.values()} == {"completed"}
    assert runs[(first, "plain")].id not in claimed  # handed off
    assert runs[(first, "limited")].id in claimed  # flow control: decided at claim
    assert runs[(second, "plain")].id in claimed
    assert runs[(second, "limited")].id in claimed
