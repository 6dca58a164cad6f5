"""Bad input to app.send: refused with a clear EventError, and nothing of it is stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stepstone

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
odd_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
events = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"name": st.one_of(odd_text, json_values)},
        optional={
            "data": json_values,
            "id": st.one_of(odd_text, json_values),
            "ts": json_values,
            "user": json_values,
            "v": json_values,
            "extra": json_values,
        },
    ),
)
payloads = st.one_of(events, st.lists(events, max_size=5))


async def _count(app: stepstone.App) -> int:
    return len(await app.list_events(limit=1000))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_send_accepts_or_refuses_cleanly(payload: Any) -> None:
    async def check() -> None:
        app = stepstone.App("fuzz", database="memory://")

        @app.function(id="any", trigger="*")
        async def anything(ctx: stepstone.Context) -> None:
            return None

        try:
            before = await _count(app)
            try:
                ids = await app.send(payload)
            except stepstone.EventError as exc:
                assert str(exc)  # says what is wrong
                assert await _count(app) == before  # nothing of the batch stored
                return
            batch = payload if isinstance(payload, list) else [payload]
            assert len(ids) == len(batch)
            for event_id in ids:
                stored = await app.get_event(event_id)
                assert stored is not None
                assert isinstance(stored.event.data, dict)
        finally:
            await app.close()

    asyncio.run(check())


async def test_one_bad_event_refuses_the_whole_batch() -> None:
    app = stepstone.App("fuzz", database="memory://")
    good = {"name": "a/b", "data": {"x": 1}}
    with pytest.raises(stepstone.EventError, match="event 2: 'data' must be a JSON object"):
        await app.send([good, good, {"name": "a/b", "data": [1, 2]}])
    assert await _count(app) == 0
    await app.close()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"data": {}}, "'name' is required"),
        ({"name": "x" * 300}, "longer than 256"),
        ({"name": "a", "data": {"blob": "x" * (600 * 1024)}}, "over the limit of 524288"),
        ({"name": "a", "data": {"n": float("nan")}}, "not JSON-serializable"),
        ({"name": "a", "ts": "yesterday"}, "'ts' must be milliseconds"),
        ({"name": "stepstone/function.failed"}, "reserved"),
        ([{"name": "a"}] * 5001, "5001 events in one request"),
        ("just a string", "expected an Event"),
        ({"name": "a", "colour": 1}, "unknown field(s) colour"),
    ],
)
async def test_clear_messages(payload: Any, message: str) -> None:
    app = stepstone.App("fuzz", database="memory://")
    with pytest.raises(stepstone.EventError) as info:
        await app.send(payload)
    assert message in str(info.value)
    await app.close()


async def test_deeply_nested_data_is_refused_not_crashing() -> None:
    app = stepstone.App("fuzz", database="memory://")
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(stepstone.EventError, match="nested too deeply"):
        await app.send({"name": "a", "data": deep})
    await app.close()


@pytest.mark.parametrize("field", ["name", "id"])
async def test_a_nul_in_an_event_name_or_id_is_refused(field: str, database_url: str) -> None:
    app = stepstone.App("nul", database=database_url)
    try:
        event = {"name": "shop/paid", "id": "order-1", field: "bad\x00value"}
        with pytest.raises(stepstone.EventError, match=f"'{field}' must not hold a NUL"):
            await app.send(event)
        assert await app.get_event("order-1") is None  # nothing stored
    finally:
        await app.close()
