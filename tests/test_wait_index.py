"""wait_for_event: keyed conditions are found by index, others by scanning; same results."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import stepstone
from stepstone.waitkeys import index_of, key_at

from .helpers import make_app


def test_index_of_reads_equality_of_event_and_async_fields() -> None:
    trigger = {"name": "t", "data": {"k": 7, "user": {"id": "u1"}, "items": [1]}}
    assert index_of("event.data.k == async.data.k", trigger) == ("data.k", "n:7")
    assert index_of("async.data.uid == event.data.user.id", trigger) == ("data.uid", "s:u1")
    assert index_of(" event.data.k==async.data.other ", trigger) == ("data.other", "n:7")
    assert index_of("event.data.items == async.data.items", trigger) is None  # composite
    assert index_of("event.data.missing == async.data.k", trigger) is None
    assert index_of("async.data.k > 3", trigger) is None
    assert index_of("event.data.k == event.data.k", trigger) is None
    assert index_of("event.data.k == async.data.k && true", trigger) is None
    assert index_of(None, trigger) is None


def test_keys_of_numerically_equal_values_agree_and_kinds_never_do() -> None:
    assert key_at({"k": 1}, "k") == key_at({"k": 1.0}, "k")
    assert key_at({"k": 1}, "k") != key_at({"k": "1"}, "k")
    assert key_at({"k": True}, "k") != key_at({"k": 1}, "k")
    assert key_at({"k": None}, "k") == "null"
    assert key_at({"k": 1.5}, ".k") == "n:1.5"
    assert key_at({"k": {"a": 1}}, "k") is None


def _waiting_app(url: str, condition: str | None, results: dict[int, Any]) -> stepstone.App:
    app = make_app(url)

    @app.function(id="waiter", trigger="t/start")
    async def waiter(ctx: stepstone.Context) -> Any:
        got = await ctx.step.wait_for_event("w", event="t/go", timeout="1h", if_=condition)
        value = None if got is None else got.data
        results[ctx.event.data["k"]] = value
        return value

    return app


async def _start(app: stepstone.App, keys: list[Any]) -> dict[Any, str]:
    runs = {}
    for k in keys:
        [event_id] = await app.send({"name": "t/start", "data": {"k": k}})
        [run] = await app.runs_for_event(event_id)
        runs[k] = run.id
    for _ in range(500):  # until every run waits
        statuses = [(await app.get_run(r, history=False)) for r in runs.values()]
        if all(s is not None and s.status == "waiting" for s in statuses):
            return runs
        await asyncio.sleep(0.01)
    raise AssertionError("the runs never reached their wait")


@pytest.mark.parametrize(
    "condition",
    [
        "event.data.k == async.data.k",
        "async.data.k == event.data.k",
        "event.data.k + 0 == async.data.k",
    ],
)
async def test_an_event_resumes_only_the_run_whose_condition_it_meets(
    database_url: str, condition: str
) -> None:
    results: dict[int, Any] = {}
    app = _waiting_app(database_url, condition, results)
    try:
        async with app.worker(poll_interval=0.02):
            runs = await _start(app, [1, 2, 3])
            await app.send({"name": "t/go", "data": {"k": 2.0, "n": "two"}})  # 2.0 == 2 in CEL
            await app.send({"name": "t/go", "data": {"k": "3"}})  # a string never equals 3
            await app.send({"name": "t/other", "data": {"k": 1}})  # nobody waits for this name
            done = await app.wait_for_run(runs[2], timeout=10)
            assert done.output == {"k": 2.0, "n": "two"}
            await asyncio.sleep(0.2)
            for k in (1, 3):
                run = await app.get_run(runs[k])
                assert run is not None and run.status == "waiting"
            await app.send({"name": "t/go", "data": {"k": 3}})
            assert (await app.wait_for_run(runs[3], timeout=10)).output == {"k": 3}
    finally:
        await app.close()


async def test_a_wait_without_condition_takes_the_next_event_of_its_name(
    database_url: str,
) -> None:
    results: dict[int, Any] = {}
    app = _waiting_app(database_url, None, results)
    try:
        async with app.worker(poll_interval=0.02):
            runs = await _start(app, [5])
            await app.send({"name": "t/go", "data": {"any": True}})
            assert (await app.wait_for_run(runs[5], timeout=10)).output == {"any": True}
    finally:
        await app.close()
