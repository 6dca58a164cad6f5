"""A Python SDK app (FastAPI) for stepstone's tests: run by tests/sdk/harness.py.

Every step records its side effect as one line in $SDK_TEST_LEDGER, so tests can check
that each step ran exactly as often as it should. Its functions mirror js_app.cjs.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import time

import fastapi
import inngest
import inngest.fast_api
import uvicorn

LEDGER = os.environ["SDK_TEST_LEDGER"]
client = inngest.Inngest(
    app_id=os.environ.get("SDK_TEST_APP_ID", "py-app"), logger=logging.getLogger("py_app")
)


def effect(line: str) -> int:
    """Record a side effect; returns how often this line was recorded, this one included."""
    with open(LEDGER, "a") as ledger:
        ledger.write(line + "\n")
    with open(LEDGER) as ledger:
        return sum(1 for seen in ledger if seen.rstrip("\n") == line)


@client.create_function(fn_id="sequential", trigger=inngest.TriggerEvent(event="test/sequential"))
async def sequential(ctx: inngest.Context) -> dict[str, object]:
    async def one() -> int:
        effect("sequential:one")
        return int(ctx.event.data.get("start", 1))  # type: ignore[arg-type]

    first = await ctx.step.run("one", one)

    async def two() -> int:
        effect("sequential:two")
        return first + 1

    second = await ctx.step.run("two", two)
    return {"sum": first + second}


@client.create_function(fn_id="flaky", trigger=inngest.TriggerEvent(event="test/flaky"), retries=2)
async def flaky(ctx: inngest.Context) -> str:
    async def attempt() -> str:
        if effect("flaky:attempt") == 1:
            raise RuntimeError("the first attempt fails")
        return f"ok at attempt {ctx.attempt}"

    return await ctx.step.run("flaky", attempt)


@client.create_function(fn_id="parallel", trigger=inngest.TriggerEvent(event="test/parallel"))
async def parallel(ctx: inngest.Context) -> list[object]:
    async def branch_a() -> str:
        effect("parallel:a")
        return "a"

    async def branch_b() -> str:
        effect("parallel:b")
        return "b"

    results = await ctx.group.parallel(
        (lambda: ctx.step.run("a", branch_a), lambda: ctx.step.run("b", branch_b))
    )

    async def after() -> str:
        effect("parallel:after")
        return "+".join(str(r) for r in results)

    return [*results, await ctx.step.run("after", after)]


@client.create_function(
    fn_id="parallel-flaky", trigger=inngest.TriggerEvent(event="test/parallel-flaky")
)
async def parallel_flaky(ctx: inngest.Context) -> list[object]:
    async def steady() -> str:
        effect("parallel-flaky:steady")
        return "steady"

    async def wobbly() -> str:
        if effect("parallel-flaky:wobbly") == 1:
            raise RuntimeError("wobbly fails once")
        return "wobbly"

    results = await ctx.group.parallel(
        (lambda: ctx.step.run("steady", steady), lambda: ctx.step.run("wobbly", wobbly))
    )

    async def after() -> str:
        effect("parallel-flaky:after")
        return "done"

    return [*results, await ctx.step.run("after", after)]


@client.create_function(fn_id="sleeper", trigger=inngest.TriggerEvent(event="test/sleeper"))
async def sleeper(ctx: inngest.Context) -> str:
    async def before() -> str:
        effect("sleeper:before")
        return "before"

    await ctx.step.run("before", before)
    await ctx.step.sleep("nap", datetime.timedelta(seconds=2))

    async def after() -> str:
        effect("sleeper:after")
        return "after"

    return await ctx.step.run("after", after)


@client.create_function(fn_id="waiter", trigger=inngest.TriggerEvent(event="test/waiter"))
async def waiter(ctx: inngest.Context) -> dict[str, object]:
    approval = await ctx.step.wait_for_event(
        "approval",
        event="test/approved",
        if_exp="event.data.order == async.data.order",
        timeout=datetime.timedelta(minutes=1),
    )
    if approval is None:
        return {"approved": False}
    return {"approved": True, "by": approval.data.get("by")}


@client.create_function(
    fn_id="nonretriable", trigger=inngest.TriggerEvent(event="test/nonretriable")
)
async def nonretriable(ctx: inngest.Context) -> str:
    async def boom() -> str:
        effect("nonretriable:boom")
        raise inngest.NonRetriableError("this cannot work")

    return await ctx.step.run("boom", boom)


@client.create_function(
    fn_id="catcher", trigger=inngest.TriggerEvent(event="test/catcher"), retries=0
)
async def catcher(ctx: inngest.Context) -> str:
    async def broken() -> str:
        effect("catcher:broken")
        raise ValueError("broken for good")

    try:
        await ctx.step.run("broken", broken)
    except inngest.StepError as exc:
        return f"caught {exc.name}: {exc.message}"
    return "not caught"


@client.create_function(fn_id="invoker", trigger=inngest.TriggerEvent(event="test/invoker"))
async def invoker(ctx: inngest.Context) -> object:
    return await ctx.step.invoke("call", function=sequential, data={"start": 10})


@client.create_function(fn_id="sender", trigger=inngest.TriggerEvent(event="test/sender"))
async def sender(ctx: inngest.Context) -> list[str]:
    return await ctx.step.send_event("send", inngest.Event(name="test/sent", data={"from": "py"}))


async def report_failure(ctx: inngest.Context) -> str:
    return "handled"


@client.create_function(
    fn_id="failing",
    trigger=inngest.TriggerEvent(event="test/failing"),
    retries=1,
    on_failure=report_failure,
)
async def failing(ctx: inngest.Context) -> None:
    raise RuntimeError("always fails")


@client.create_function(
    fn_id="limited",
    trigger=inngest.TriggerEvent(event="test/limited", expression="event.data.ok == true"),
    concurrency=[inngest.Concurrency(limit=2, key="event.data.user")],
    throttle=inngest.Throttle(limit=10, period=datetime.timedelta(minutes=1)),
    rate_limit=inngest.RateLimit(limit=100, period=datetime.timedelta(hours=1)),
    priority=inngest.Priority(run="event.data.vip ? 60 : 0"),
    idempotency="event.data.request",
    cancel=[inngest.Cancel(event="test/stop", if_exp="event.data.user == async.data.user")],
    timeouts=inngest.Timeouts(finish=datetime.timedelta(minutes=5)),
)
async def limited(ctx: inngest.Context) -> str:
    return "limited"


@client.create_function(
    fn_id="batched",
    trigger=inngest.TriggerEvent(event="test/batched"),
    batch_events=inngest.Batch(max_size=10, timeout=datetime.timedelta(seconds=5)),
)
async def batched(ctx: inngest.Context) -> int:
    return len(ctx.events)


@client.create_function(
    fn_id="debounced",
    trigger=inngest.TriggerEvent(event="test/debounced"),
    debounce=inngest.Debounce(period=datetime.timedelta(seconds=10), key="event.data.user"),
    singleton=inngest.Singleton(key="event.data.user", mode="skip"),
)
async def debounced(ctx: inngest.Context) -> str:
    return "debounced"


@client.create_function(fn_id="scheduled", trigger=inngest.TriggerCron(cron="0 * * * *"))
async def scheduled(ctx: inngest.Context) -> str:
    return "tick"


@client.create_function(fn_id="slow", trigger=inngest.TriggerEvent(event="test/slow"))
async def slow(ctx: inngest.Context) -> str:
    """A step long enough to kill the worker that waits for it (tests only, no js twin)."""

    async def before() -> str:
        effect("slow:before")
        return "before"

    await ctx.step.run("before", before)

    async def long() -> str:
        effect("slow:start")
        await asyncio.sleep(float(ctx.event.data.get("seconds", 3)))  # type: ignore[arg-type]
        effect("slow:end")
        return "long"

    return await ctx.step.run("long", long)


@client.create_function(
    fn_id="invoke-native", trigger=inngest.TriggerEvent(event="test/invoke-native")
)
async def invoke_native(ctx: inngest.Context) -> object:
    """Invokes a function of another app (a native stepstone one) by its id."""
    return await ctx.step.invoke_by_id(
        "call",
        app_id=str(ctx.event.data["app"]),
        function_id=str(ctx.event.data["function"]),
        data={"n": 20},
    )


async def _held(ctx: inngest.Context, fn: str) -> str:
    """One step that holds its run for `data.hold` seconds, its start and end in the ledger
    (`fn:start|end:<run id>:<unix time>`), so a test can measure how many overlapped."""

    async def hold() -> str:
        effect(f"{fn}:start:{ctx.run_id}:{time.time():.6f}")
        await asyncio.sleep(float(ctx.event.data.get("hold", 0.5)))  # type: ignore[arg-type]
        effect(f"{fn}:end:{ctx.run_id}:{time.time():.6f}")
        return ctx.run_id

    return await ctx.step.run("hold", hold)


@client.create_function(
    fn_id="one-at-a-time",
    trigger=inngest.TriggerEvent(event="test/one-at-a-time"),
    concurrency=[inngest.Concurrency(limit=1)],
)
async def one_at_a_time(ctx: inngest.Context) -> str:
    return await _held(ctx, "one-at-a-time")


@client.create_function(
    fn_id="two-at-a-time",
    trigger=inngest.TriggerEvent(event="test/two-at-a-time"),
    concurrency=[inngest.Concurrency(limit=2)],
)
async def two_at_a_time(ctx: inngest.Context) -> str:
    return await _held(ctx, "two-at-a-time")


FUNCTIONS = [
    slow,
    invoke_native,
    sequential,
    flaky,
    parallel,
    parallel_flaky,
    sleeper,
    waiter,
    nonretriable,
    catcher,
    invoker,
    sender,
    failing,
    limited,
    batched,
    debounced,
    scheduled,
    one_at_a_time,
    two_at_a_time,
]

# SDK_TEST_FUNCTIONS=a,b serves only those (a re-sync then drops the others)
if os.environ.get("SDK_TEST_FUNCTIONS"):
    wanted = os.environ["SDK_TEST_FUNCTIONS"].split(",")
    FUNCTIONS = [fn for fn in FUNCTIONS if fn.local_id in wanted]

app = fastapi.FastAPI()


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


inngest.fast_api.serve(app, client, FUNCTIONS)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
