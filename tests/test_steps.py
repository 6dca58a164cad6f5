"""step.run through the public API: memoization, JSON round trip, retries, parallelism."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pydantic

import stepstone
from tests.helpers import make_app, send_and_wait


async def test_seed_example_runs_step_and_returns(database_url: str) -> None:
    app = make_app(database_url)
    seen: list[list[str]] = []

    async def copy_all_images_to_s3(urls: list[str]) -> list[str]:
        seen.append(urls)
        return [f"s3://bucket/{u}" for u in urls]

    @app.function(id="import-product-images", trigger="shop/product.imported")
    async def import_product_images(ctx: stepstone.Context) -> dict[str, Any]:
        uploaded = await ctx.step.run(
            "copy-images-to-s3", copy_all_images_to_s3, ctx.event.data["imageURLs"]
        )
        return {"uploaded": uploaded}

    async with app.worker():
        run = await send_and_wait(app, "shop/product.imported", {"imageURLs": ["a.png", "b.png"]})
    await app.close()
    assert run.status == "completed"
    assert run.output == {"uploaded": ["s3://bucket/a.png", "s3://bucket/b.png"]}
    assert seen == [["a.png", "b.png"]]
    step = run.step("copy-images-to-s3")
    assert step.status == "completed" and step.attempts == 1
    assert step.hashed_id == "3059b195c91cda9734ab88acfdcd22086b09f9b3"  # sha1 of the id
    assert step.output == run.output["uploaded"]


async def test_sync_async_and_optional_return_handlers(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="etl", trigger="etl/start")
    async def etl(ctx: stepstone.Context) -> Any:
        async def get_api_data() -> dict[str, Any]:
            await asyncio.sleep(0)
            return {"rows": [1, 2, 3]}

        result = await ctx.step.run("get-api-data", get_api_data)
        data = await ctx.step.run("transform", lambda: sum(result["rows"]))
        nothing = await ctx.step.run("insert-data", lambda: None)
        return {"data": data, "nothing": nothing}

    async with app.worker():
        run = await send_and_wait(app, "etl/start")
    await app.close()
    assert run.output == {"data": 6, "nothing": None}
    assert [s.id for s in run.steps] == ["get-api-data", "transform", "insert-data"]


@dataclasses.dataclass
class Point:
    x: int
    y: int


class User(pydantic.BaseModel):
    id: uuid.UUID
    created_at: datetime


async def test_json_round_trip_is_the_same_on_first_run_and_on_replay(database_url: str) -> None:
    app = make_app(database_url)
    when = datetime(2023, 5, 31, 11, 39, 18, 97000, tzinfo=UTC)
    uid = uuid.UUID("647731d1-759a-a55b-e43b-975d00000000")
    first_values: list[Any] = []
    replay_values: list[Any] = []
    attempts = {"n": 0}

    @app.function(id="serde", trigger="serde/go", retries=2)
    async def serde(ctx: stepstone.Context) -> Any:
        value = await ctx.step.run(
            "make",
            lambda: {
                "when": when,
                "id": uid,
                "pair": (1, 2),
                "point": Point(1, 2),
                "user": User(id=uid, created_at=when),
                "n": 1.5,
            },
        )
        (replay_values if ctx.attempt > 0 else first_values).append(value)
        typed = await ctx.step.run("typed", lambda: Point(3, 4), output_type=Point)
        assert typed == Point(3, 4)
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("fail once outside steps, so the function replays")
        return value

    async with app.worker():
        run = await send_and_wait(app, "serde/go")
    await app.close()
    expected = {
        "when": "2023-05-31T11:39:18.097000+00:00",
        "id": str(uid),
        "pair": [1, 2],
        "point": {"x": 1, "y": 2},
        "user": {"id": str(uid), "created_at": "2023-05-31T11:39:18.097000Z"},
        "n": 1.5,
    }
    assert run.status == "completed"
    assert first_values == [expected]
    assert replay_values == [expected]
    assert run.output == expected
    assert run.attempt == 1


async def test_retry_then_success_does_not_rerun_earlier_steps(database_url: str) -> None:
    app = make_app(database_url)
    calls = {"first": 0, "flaky": 0}

    @app.function(id="flaky", trigger="flaky/go")
    async def flaky(ctx: stepstone.Context) -> Any:
        def first() -> str:
            calls["first"] += 1
            return "done"

        def unreliable() -> int:
            calls["flaky"] += 1
            if calls["flaky"] < 3:
                raise ConnectionError(f"attempt {calls['flaky']} failed")
            return calls["flaky"]

        a = await ctx.step.run("first", first)
        b = await ctx.step.run("unreliable", unreliable)
        return [a, b]

    async with app.worker():
        run = await send_and_wait(app, "flaky/go")
    await app.close()
    assert run.status == "completed" and run.output == ["done", 3]
    assert calls == {"first": 1, "flaky": 3}
    assert run.step("unreliable").attempts == 3
    retries = [h for h in run.history if h.kind == "step.retrying"]
    assert [h.data["attempt"] for h in retries] == [1, 2]
    assert retries[0].data["error"]["message"] == "attempt 1 failed"


async def test_step_out_of_attempts_fails_the_run_with_its_error(database_url: str) -> None:
    app = make_app(database_url)
    calls = {"n": 0}

    @app.function(id="doomed", trigger="doomed/go", retries=2)
    async def doomed(ctx: stepstone.Context) -> Any:
        def always() -> None:
            calls["n"] += 1
            raise ValueError("the API is down")

        await ctx.step.run("call-api", always)
        return "unreachable"

    async with app.worker():
        run = await send_and_wait(app, "doomed/go")
    await app.close()
    assert run.status == "failed"
    assert calls["n"] == 3  # retries=2: three attempts
    assert run.error is not None
    assert run.error["name"] == "ValueError" and run.error["message"] == "the API is down"
    assert "always" in run.error["stack"]
    step = run.step("call-api")
    assert step.status == "failed" and step.attempts == 3


async def test_non_retriable_error_is_caught_as_step_error(database_url: str) -> None:
    app = make_app(database_url)
    calls = {"n": 0}

    @app.function(id="careful", trigger="careful/go")
    async def careful(ctx: stepstone.Context) -> Any:
        def refuse() -> None:
            calls["n"] += 1
            raise stepstone.NonRetriableError("card declined")

        try:
            await ctx.step.run("charge", refuse)
        except stepstone.StepError as err:
            name, message = err.name, err.error["message"]
            recovered = await ctx.step.run("notify", lambda: f"caught {name}")
            return {"recovered": recovered, "message": message}
        return "unreachable"

    async with app.worker():
        run = await send_and_wait(app, "careful/go")
    await app.close()
    assert calls["n"] == 1
    assert run.status == "completed"
    assert run.output == {"recovered": "caught NonRetriableError", "message": "card declined"}


async def test_retry_after_error_sets_the_next_attempt_time(database_url: str) -> None:
    app = make_app(database_url)
    times: list[float] = []

    @app.function(id="rate-limited", trigger="rl/go")
    async def rate_limited(ctx: stepstone.Context) -> Any:
        def call() -> str:
            times.append(time.monotonic())
            if len(times) == 1:
                raise stepstone.RetryAfterError("429", 0.6)
            return "ok"

        return await ctx.step.run("call", call)

    async with app.worker():
        run = await send_and_wait(app, "rl/go")
    await app.close()
    assert run.output == "ok"
    gap = times[1] - times[0]
    assert 0.55 <= gap < 3.0, gap  # the default backoff in these tests is 0.02 s
    retry = next(h for h in run.history if h.kind == "step.retrying")
    assert retry.data["error"]["name"] == "RetryAfterError"


async def test_parallel_steps_really_run_in_parallel(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="fan-out", trigger="fan/go")
    async def fan_out(ctx: stepstone.Context) -> Any:
        def slow(n: int) -> int:
            time.sleep(0.5)  # a blocking handler: runs in a thread, not on the loop
            return n

        async def slow_async(n: int) -> int:
            await asyncio.sleep(0.5)
            return n

        # created before any await: they start at once
        a = ctx.step.run("a", slow, 1)
        b = ctx.step.run("b", slow, 2)
        c = ctx.step.run("c", slow_async, 3)
        return [await a, await b, await c]

    async with app.worker():
        start = time.monotonic()
        run = await send_and_wait(app, "fan/go")
        elapsed = time.monotonic() - start
    await app.close()
    assert run.output == [1, 2, 3]
    assert elapsed < 1.2, elapsed
    starts = sorted(s.started_at or 0 for s in run.steps)
    assert starts[-1] - starts[0] < 0.3


async def test_gather_runs_steps_in_parallel(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="gather", trigger="gather/go")
    async def gather(ctx: stepstone.Context) -> Any:
        return await asyncio.gather(
            *(ctx.step.run(f"s{i}", asyncio.sleep, 0.5, i) for i in range(3))
        )

    async with app.worker():
        start = time.monotonic()
        run = await send_and_wait(app, "gather/go")
        elapsed = time.monotonic() - start
    await app.close()
    assert run.output == [0, 1, 2]
    assert elapsed < 1.2


async def test_repeated_ids_in_a_loop_get_their_own_steps(database_url: str) -> None:
    app = make_app(database_url)
    runs_of = {"n": 0}

    @app.function(id="loop", trigger="loop/go")
    async def loop(ctx: stepstone.Context) -> Any:
        out = []
        for i in range(3):
            out.append(await ctx.step.run("item", lambda i=i: i * 10))
        runs_of["n"] += 1
        if runs_of["n"] == 1:
            raise RuntimeError("replay once")
        return out

    async with app.worker():
        run = await send_and_wait(app, "loop/go")
    await app.close()
    assert run.output == [0, 10, 20]
    assert [(s.id, s.occurrence) for s in run.steps] == [("item", 0), ("item", 1), ("item", 2)]
    import hashlib

    assert run.step("item", occurrence=2).hashed_id == hashlib.sha1(b"item:2").hexdigest()
    assert all(s.attempts == 1 for s in run.steps)


async def test_unserializable_output_fails_at_once_naming_step_and_type(database_url: str) -> None:
    app = make_app(database_url)
    calls = {"n": 0}

    @app.function(id="bad-output", trigger="bad/go")
    async def bad_output(ctx: stepstone.Context) -> Any:
        def make() -> Any:
            calls["n"] += 1
            return {"handle": object()}

        try:
            await ctx.step.run("open-file", make)
        except stepstone.StepError as err:
            return err.error["message"]
        return "unreachable"

    async with app.worker():
        run = await send_and_wait(app, "bad/go")
    await app.close()
    assert calls["n"] == 1  # not retried
    assert run.status == "completed"
    assert "'open-file'" in run.output and "object" in run.output and "['handle']" in run.output


async def test_nested_step_is_a_clear_error(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="nested", trigger="nested/go")
    async def nested(ctx: stepstone.Context) -> Any:
        async def outer() -> Any:
            return await ctx.step.run("inner", lambda: 1)

        await ctx.step.run("outer", outer)

    async with app.worker():
        run = await send_and_wait(app, "nested/go")
    await app.close()
    assert run.status == "failed"
    assert run.error is not None
    assert "inside the handler of step 'outer'" in run.error["message"]
    assert run.step("outer").attempts == 1


async def test_sync_function_gets_values_directly(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="sync-fn", trigger="sync/go")
    def sync_fn(ctx: stepstone.Context) -> Any:
        rows = ctx.step.run("get", lambda: [1, 2, 3])
        total = ctx.step.run("sum", lambda: sum(rows))
        try:
            ctx.step.run("fail", _raise_non_retriable)
        except stepstone.StepError as err:
            return {"total": total, "caught": err.name}
        return None

    async with app.worker():
        run = await send_and_wait(app, "sync/go")
    await app.close()
    assert run.output == {"total": 6, "caught": "NonRetriableError"}


def _raise_non_retriable() -> None:
    raise stepstone.NonRetriableError("no")


async def test_function_level_retry_counts_attempts_outside_steps(database_url: str) -> None:
    app = make_app(database_url)
    attempts: list[int] = []

    @app.function(id="outside", trigger="outside/go", retries=1)
    async def outside(ctx: stepstone.Context) -> Any:
        attempts.append(ctx.attempt)
        await ctx.step.run("ok", lambda: 1)
        raise KeyError("missing")

    async with app.worker():
        run = await send_and_wait(app, "outside/go")
    await app.close()
    assert attempts == [0, 1]
    assert run.status == "failed" and run.error is not None and run.error["name"] == "KeyError"
    assert run.step("ok").attempts == 1


async def test_logger_lines_are_saved_once_and_quiet_on_replay(database_url: str) -> None:
    app = make_app(database_url)
    attempts = {"n": 0}

    @app.function(id="chatty", trigger="chatty/go")
    async def chatty(ctx: stepstone.Context) -> Any:
        ctx.logger.info("starting for %s", ctx.event.data["who"])
        await ctx.step.run("one", lambda: 1)
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("retry the function: the first log line must not repeat")
        ctx.logger.warning("done")
        return "ok"

    async with app.worker():
        run = await send_and_wait(app, "chatty/go", {"who": "ada"})
    await app.close()
    logs = [(h.data["level"], h.data["message"]) for h in run.history if h.kind == "log"]
    assert logs == [("INFO", "starting for ada"), ("WARNING", "done")]


async def test_a_def_function_s_def_steps_run_on_its_own_thread(database_url: str) -> None:
    """A `def` handler of a `def` function runs on the function's thread (its checkpoint
    goes to the event loop): retried, replayed after a sleep without running again; an
    async handler still runs on the loop."""
    app = make_app(database_url)
    calls: dict[str, int] = {}
    seen: dict[str, Any] = {}

    def counted(name: str, value: Any) -> Any:
        calls[name] = calls.get(name, 0) + 1
        seen.setdefault(f"{name} thread", threading.get_ident())
        return value

    def flaky(ctx: stepstone.Context) -> str:
        seen.setdefault("attempts", []).append(ctx.attempt)
        if ctx.attempt == 0:
            raise RuntimeError("first attempt fails")
        return "second"

    async def on_the_loop() -> str:
        return "async"

    @app.function(id="def-steps", trigger="def/steps")
    def def_steps(ctx: stepstone.Context) -> Any:
        seen.setdefault("function thread", threading.get_ident())
        first = ctx.step.run("first", counted, "first", {"a": (1, 2)})
        retried = ctx.step.run("flaky", flaky, ctx)
        ctx.step.sleep("nap", 0.05)
        after = ctx.step.run("after", counted, "after", 3)
        awaited = ctx.step.run("async", on_the_loop)
        return {
            "first": first,
            "retried": retried,
            "after": after,
            "awaited": awaited,
        }

    async with app.worker():
        run = await send_and_wait(app, "def/steps")
    await app.close()
    assert run.output == {
        "first": {"a": [1, 2]},  # as JSON gives it back
        "retried": "second",
        "after": 3,
        "awaited": "async",
    }
    assert calls == {"first": 1, "after": 1}  # replayed after the sleep, not run again
    assert seen["attempts"] == [0, 1]
    # the first invocation's function thread ran its first step
    assert seen["first thread"] == seen["function thread"]
    assert run.step("flaky").attempts == 2


async def test_a_step_tool_inside_a_def_step_of_a_def_function_fails_the_run(
    database_url: str,
) -> None:
    app = make_app(database_url)

    def nests(ctx: stepstone.Context) -> None:
        ctx.step.run("inner", lambda: 1)

    @app.function(id="def-nested", trigger="def/nested")
    def def_nested(ctx: stepstone.Context) -> Any:
        try:
            ctx.step.run("outer", nests, ctx)
        except stepstone.StepError:
            return "caught"  # a misuse fails the run all the same
        return "no error"

    async with app.worker():
        run = await send_and_wait(app, "def/nested")
    await app.close()
    assert run.status == "failed" and run.error is not None
    assert (
        "step.run('inner') was called inside the handler of step 'outer'" in (run.error["message"])
    )
    assert [s.id for s in run.steps] == ["outer"]
