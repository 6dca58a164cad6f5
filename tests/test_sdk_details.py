"""The details code written against the reference SDKs relies on, on every store, for `def`
and `async def` functions alike: StepError's attributes, a repeated step id, a step tool
misused inside a handler, ctx.attempt inside steps, pages of runs and events, and ids
holding any text."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import stepstone
from tests.apps import odd_ids
from tests.helpers import make_app, send_and_wait
from tests.live_server import LiveServer, wait_for_run

ROOT = Path(__file__).resolve().parent.parent

KINDS = ["async", "sync"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def _pick(kind: str, async_fn: Any, sync_fn: Any) -> Any:
    return async_fn if kind == "async" else sync_fn


# -- StepError ------------------------------------------------------------------------------
def _decline() -> None:
    raise ValueError("card declined")


def _what_was_caught(err: stepstone.StepError) -> dict[str, Any]:
    return {
        "name": err.name,
        "message": err.message,
        "str": str(err),
        "step_id": err.step_id,
        "stack_names_it": "ValueError: card declined" in err.stack and "_decline" in err.stack,
        "error": err.error["message"],
    }


async def test_step_error_carries_the_steps_error_as_attributes(
    database_url: str, kind: str
) -> None:
    app = make_app(database_url)

    async def charge_async(ctx: stepstone.Context) -> Any:
        try:
            await ctx.step.run("charge", _decline)
        except stepstone.StepError as err:
            return _what_was_caught(err)

    def charge_sync(ctx: stepstone.Context) -> Any:
        try:
            ctx.step.run("charge", _decline)
        except stepstone.StepError as err:
            return _what_was_caught(err)

    app.function(id="charge", trigger="pay/go", retries=1)(_pick(kind, charge_async, charge_sync))
    async with app.worker():
        run = await send_and_wait(app, "pay/go")
    await app.close()
    assert run.status == "completed"
    assert run.output == {
        "name": "ValueError",
        "message": "card declined",
        "str": "card declined",
        "step_id": "charge",
        "stack_names_it": True,
        "error": "card declined",
    }
    assert run.step("charge").attempts == 2


# -- a step id used again --------------------------------------------------------------------
async def test_a_repeated_step_id_keeps_its_id_and_counts_its_occurrences(
    database_url: str, kind: str
) -> None:
    app = make_app(database_url)
    calls: list[int] = []

    def handler(i: int) -> int:
        calls.append(i)
        return i * 10

    async def loop_async(ctx: stepstone.Context) -> Any:
        out = [await ctx.step.run("repeat", handler, i) for i in range(3)]
        if ctx.attempt == 0:
            raise RuntimeError("again, so that the saved steps are replayed")
        return out

    def loop_sync(ctx: stepstone.Context) -> Any:
        out = [ctx.step.run("repeat", handler, i) for i in range(3)]
        if ctx.attempt == 0:
            raise RuntimeError("again, so that the saved steps are replayed")
        return out

    app.function(id="loop", trigger="loop/go")(_pick(kind, loop_async, loop_sync))
    async with app.worker():
        run = await send_and_wait(app, "loop/go")
    await app.close()
    assert run.status == "completed" and run.attempt == 1
    assert run.output == [0, 10, 20]
    assert calls == [0, 1, 2]  # replayed from the saved steps, not run again
    assert [(s.id, s.occurrence) for s in run.steps] == [
        ("repeat", 0),
        ("repeat", 1),
        ("repeat", 2),
    ]
    keys = ["repeat", "repeat:1", "repeat:2"]
    assert [s.hashed_id for s in run.steps] == [hashlib.sha1(k.encode()).hexdigest() for k in keys]
    assert [s.label for s in run.steps] == ["repeat", "repeat #2", "repeat #3"]
    assert run.step("repeat", occurrence=1).output == 10


# -- a step tool inside a step's handler ------------------------------------------------------
TOOLS = {
    "run": lambda step: step.run("inner", lambda: 1),
    "sleep": lambda step: step.sleep("inner", 1),
    "wait_for_event": lambda step: step.wait_for_event("inner", event="x/y", timeout=1),
    "invoke": lambda step: step.invoke("inner", function="nested"),
    "send_event": lambda step: step.send_event("inner", stepstone.Event("x/y")),
}


@pytest.mark.parametrize("tool", list(TOOLS))
async def test_a_step_tool_inside_a_handler_fails_the_run_even_when_caught(
    database_url: str, kind: str, tool: str
) -> None:
    app = make_app(database_url)
    handled: list[str] = []

    def outer_handler(step: Any) -> str:
        try:
            TOOLS[tool](step)
        except Exception as exc:
            handled.append(type(exc).__name__)  # the user's catch-all hides nothing
        return "carried on"

    async def nested_async(ctx: stepstone.Context) -> Any:
        # caught again: the run still fails, and no new step starts
        with contextlib.suppress(stepstone.StepError):
            await ctx.step.run("outer", outer_handler, ctx.step)
        await ctx.step.run("after", lambda: "must not run")
        return "completed anyway"

    def nested_sync(ctx: stepstone.Context) -> Any:
        with contextlib.suppress(stepstone.StepError):
            ctx.step.run("outer", outer_handler, ctx.step)
        ctx.step.run("after", lambda: "must not run")
        return "completed anyway"

    app.function(id="nested", trigger="nested/go", retries=3)(
        _pick(kind, nested_async, nested_sync)
    )
    async with app.worker():
        run = await send_and_wait(app, "nested/go")
    await app.close()
    assert handled == ["NestedStepError"]  # once: neither the step nor the run was retried
    assert run.status == "failed" and run.attempt == 0
    assert run.error is not None and run.error["name"] == "NestedStepError"
    assert f"step.{tool}('inner')" in run.error["message"]
    assert "inside the handler of step 'outer'" in run.error["message"]
    outer = run.step("outer")
    assert outer.status == "failed" and outer.attempts == 1
    assert outer.error is not None and outer.error["name"] == "NestedStepError"
    assert [s.id for s in run.steps] == ["outer"]


# -- ctx.attempt ------------------------------------------------------------------------------
async def test_ctx_attempt_inside_a_step_is_that_steps_attempt(
    database_url: str, kind: str
) -> None:
    app = make_app(database_url)
    seen: dict[str, list[int]] = {"twice": [], "once": [], "outside": [], "late": []}

    def failing(name: str, failures: int) -> Any:
        def handler(ctx: stepstone.Context) -> str:
            seen[name].append(ctx.attempt)
            if len(seen[name]) <= failures:
                raise RuntimeError(f"{name} attempt {ctx.attempt} failed")
            return name

        return handler

    async def fails_twice(ctx: stepstone.Context) -> str:  # an async handler ...
        await asyncio.sleep(0)
        return str(failing("twice", 2)(ctx))

    fails_once = failing("once", 1)  # ... and a sync one, in a thread

    async def attempts_async(ctx: stepstone.Context) -> Any:
        seen["outside"].append(ctx.attempt)
        # in parallel: each step sees its own attempt
        await asyncio.gather(
            ctx.step.run("twice", fails_twice, ctx), ctx.step.run("once", fails_once, ctx)
        )
        if ctx.attempt == 0:
            raise RuntimeError("retry the function once")
        return await ctx.step.run("late", failing("late", 0), ctx)

    def attempts_sync(ctx: stepstone.Context) -> Any:
        seen["outside"].append(ctx.attempt)
        ctx.step.run("twice", failing("twice", 2), ctx)
        ctx.step.run("once", fails_once, ctx)
        if ctx.attempt == 0:
            raise RuntimeError("retry the function once")
        return ctx.step.run("late", failing("late", 0), ctx)

    app.function(id="attempts", trigger="attempts/go", retries=3)(
        _pick(kind, attempts_async, attempts_sync)
    )
    async with app.worker():
        run = await send_and_wait(app, "attempts/go")
    await app.close()
    assert run.status == "completed" and run.output == "late"
    assert seen["twice"] == [0, 1, 2]
    assert seen["once"] == [0, 1]
    assert seen["late"] == [0]  # a step's own attempt, though the function is on its second
    # outside steps: the function's attempt, through the steps' retries and its own
    assert seen["outside"][0] == 0 and seen["outside"][-1] == 1
    assert set(seen["outside"]) == {0, 1}


# -- pages ------------------------------------------------------------------------------------
async def test_runs_and_events_come_in_pages_to_iterate(database_url: str) -> None:
    app = make_app(database_url)

    @app.function(id="paged", trigger="paged/go")
    async def paged(ctx: stepstone.Context) -> int:
        return int(ctx.event.data["n"])

    async with app.worker():
        ids = [(await app.send({"name": "paged/go", "data": {"n": n}}))[0] for n in range(5)]
        for event_id in ids:
            [run] = await app.runs_for_event(event_id)
            await app.wait_for_run(run.id)
    first = await app.list_runs(function_id="paged", limit=3)
    assert isinstance(first, stepstone.Page) and len(first) == 3
    assert [run.output for run in first] == [4, 3, 2]  # newest first
    assert first[0].output == 4 and first.next_cursor is not None
    rest = await app.list_runs(function_id="paged", limit=3, cursor=first.next_cursor)
    assert [run.output for run in rest] == [1, 0] and rest.next_cursor is None

    events = await app.list_events(name="paged/go", limit=4)
    assert [stored.event.id for stored in events] == ids[::-1][:4]
    more = await app.list_events(name="paged/go", limit=4, cursor=events.next_cursor)
    assert [stored.event.id for stored in more] == [ids[0]] and not more.next_cursor
    assert len(await app.list_events(name="no/such")) == 0
    await app.close()


# -- ids --------------------------------------------------------------------------------------
async def test_function_and_step_ids_may_be_any_text(database_url: str, kind: str) -> None:
    app = make_app(database_url)
    fn_id = 'report "Q1"/50% #1? ¿sí? 🍕 <b>'
    step_id = "load / 'all' 100% #rows? ☃ " + "x" * 200

    async def report_async(ctx: stepstone.Context) -> Any:
        return await ctx.step.run(step_id, lambda: ctx.function_id)

    def report_sync(ctx: stepstone.Context) -> Any:
        return ctx.step.run(step_id, lambda: ctx.function_id)

    app.function(id=fn_id, trigger="reports/🍕*")(_pick(kind, report_async, report_sync))
    async with app.worker():
        run = await send_and_wait(app, "reports/🍕 quarterly #1? 100%")
    assert run.status == "completed" and run.output == fn_id
    assert run.function_id == fn_id
    assert run.step(step_id).hashed_id == hashlib.sha1(step_id.encode()).hexdigest()
    [listed] = await app.list_runs(function_id=fn_id)
    assert listed.id == run.id
    await app.close()


async def test_a_step_id_must_be_a_string_of_1_to_256_characters(
    database_url: str, kind: str
) -> None:
    app = make_app(database_url)
    ids = {"empty": "", "too-long": "x" * 257, "not-text": 7}

    async def bad_async(ctx: stepstone.Context) -> Any:
        await ctx.step.run("longest", lambda: "x" * 256)
        await ctx.step.run("x" * 256, lambda: "fine")
        return await ctx.step.run(ids[ctx.event.data["case"]], lambda: "never")

    def bad_sync(ctx: stepstone.Context) -> Any:
        ctx.step.run("longest", lambda: "x" * 256)
        ctx.step.run("x" * 256, lambda: "fine")
        return ctx.step.run(ids[ctx.event.data["case"]], lambda: "never")

    app.function(id="bad-ids", trigger="bad/ids", retries=2)(_pick(kind, bad_async, bad_sync))
    async with app.worker():
        runs = {case: await send_and_wait(app, "bad/ids", {"case": case}) for case in ids}
    await app.close()
    for case, run in runs.items():
        assert run.status == "failed" and run.attempt == 0, case  # not retried
        assert run.error is not None and run.error["name"] == "InvalidStepIdError", case
        assert "non-empty string of at most 256 characters" in run.error["message"]
        assert [s.id for s in run.steps] == ["longest", "x" * 256]


async def test_invoke_and_wildcards_find_functions_by_any_id(database_url: str) -> None:
    app = odd_ids.build_app(database_url)
    async with app.worker():
        [event_id] = await app.send(
            {"name": odd_ids.EVENT, "data": {"n": 21}, "id": odd_ids.EVENT_ID}
        )
        [run] = await app.runs_for_event(event_id)
        run = await app.wait_for_run(run.id)
        [child] = await app.list_runs(function_id=odd_ids.CHILD)
    await app.close()
    assert event_id == odd_ids.EVENT_ID
    assert run.function_id == odd_ids.PARENT and run.status == "completed"
    assert run.output == {"price": 42}
    assert run.step(odd_ids.INVOKE_STEP).detail == {"function_id": odd_ids.CHILD}
    assert child.status == "completed" and child.output == 42


# -- ids over HTTP and on the command line ------------------------------------------------------
def test_any_ids_work_through_the_rest_api(database_url: str) -> None:
    with LiveServer(odd_ids.build_app(database_url), dev=True) as live, live.client() as http:
        sent = http.post(
            "/v1/events", json={"name": odd_ids.EVENT, "data": {"n": 21}, "id": odd_ids.EVENT_ID}
        )
        assert sent.json()["ids"] == [odd_ids.EVENT_ID]
        # an id in a path is percent-encoded, slashes and all
        event = http.get(f"/v1/events/{quote(odd_ids.EVENT_ID, safe='')}").json()
        assert event["id"] == odd_ids.EVENT_ID and event["name"] == odd_ids.EVENT
        [summary] = event["runs"]
        run = wait_for_run(http, summary["id"])
        assert run["function_id"] == odd_ids.PARENT and run["output"] == {"price": 42}
        steps = [(s["id"], s["occurrence"]) for s in run["steps"]]
        assert steps == [
            (odd_ids.STEP, 0),
            ("repeat", 0),
            ("repeat", 1),
            (odd_ids.INVOKE_STEP, 0),
        ]
        listed = http.get("/v1/runs", params={"function": odd_ids.PARENT}).json()["runs"]
        assert [r["id"] for r in listed] == [run["id"]]
        [child] = http.get("/v1/runs", params={"function": odd_ids.CHILD}).json()["runs"]
        assert child["function_id"] == odd_ids.CHILD
        functions = {f["id"] for f in http.get("/v1/functions").json()["functions"]}
        assert functions == {odd_ids.PARENT, odd_ids.CHILD}

        again = http.post(f"/v1/runs/{run['id']}/rerun", json={"from_step": "repeat"})
        rerun = wait_for_run(http, again.json()["run_id"])
        assert rerun["status"] == "completed" and rerun["output"] == {"price": 42}
        kept = {s["id"]: s for s in rerun["steps"]}[odd_ids.STEP]
        assert kept["ended_at"] == run["steps"][0]["ended_at"]  # kept, not run again


def test_any_ids_and_occurrences_on_the_command_line(sqlite_url: str) -> None:
    app = odd_ids.build_app(sqlite_url)

    async def one_run() -> str:
        async with app.worker():
            [event_id] = await app.send({"name": odd_ids.EVENT, "data": {"n": 1}})
            [run] = await app.runs_for_event(event_id)
            await app.wait_for_run(run.id)
        await app.close()
        return run.id

    run_id = asyncio.run(one_run())
    shown = _stepstone("run", "tests.apps.odd_ids:app", "-d", sqlite_url, run_id)
    # as written: not taken for markup
    assert re.search(rf"function +{re.escape(odd_ids.PARENT)}", shown), shown
    for label in (odd_ids.STEP, "repeat #2", odd_ids.INVOKE_STEP):
        assert label in shown
    listed = _stepstone(
        "runs", "tests.apps.odd_ids:app", "-d", sqlite_url, "--function", odd_ids.CHILD
    )
    assert odd_ids.CHILD in listed and "completed" in listed


def _stepstone(*args: str) -> str:
    """What `stepstone <args>` prints, on a wide terminal."""
    done = subprocess.run(
        [sys.executable, "-m", "stepstone", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_calls_to_sdk_apps_import_nothing_per_request() -> None:
    """The worker calls SDK apps with httpx, whose httpcore runs `import sniffio` on every
    request; Python does not cache a failed import, so without sniffio (anyio 4.11 stopped
    bringing it) each call searched sys.path. stepstone depends on it: no import per call."""
    import importlib.abc
    import importlib.machinery

    import httpx

    asked: list[str] = []

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(
            self, fullname: str, path: Any = None, target: Any = None
        ) -> importlib.machinery.ModuleSpec | None:
            asked.append(fullname)
            return None

    async def main() -> None:
        closed = asyncio.Event()

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while await reader.readuntil(b"\r\n\r\n"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    await writer.drain()
            writer.close()
            await writer.wait_closed()
            closed.set()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with server:
            async with httpx.AsyncClient() as client:
                await client.post(url, content=b"{}")  # the first request imports what it needs
                spy = Spy()
                sys.meta_path.insert(0, spy)
                try:
                    for _ in range(5):
                        assert (await client.post(url, content=b"{}")).status_code == 200
                finally:
                    sys.meta_path.remove(spy)
            await asyncio.wait_for(closed.wait(), 10)

    asyncio.run(main())
    assert asked == []
