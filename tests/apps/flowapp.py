"""Flow-controlled functions for the multi-process test: steps log start and end times."""

from __future__ import annotations

import os
import time
from typing import Any

import stepstone

app = stepstone.App("flowapp", backoff=lambda attempt: 0.05)


def record(what: str) -> None:
    path = os.path.join(os.environ["FLOW_LEDGER"], f"ledger-{os.getpid()}.txt")
    with open(path, "a") as ledger:
        ledger.write(f"{time.time():.6f} {what}\n")


@app.function(
    id="limited",
    trigger="flow/limited",
    concurrency=stepstone.Concurrency(2, key="event.data.account"),
)
def limited(ctx: stepstone.Context) -> Any:
    account = ctx.event.data["account"]

    def work() -> None:
        record(f"start {account}")
        time.sleep(0.15)
        record(f"end {account}")

    ctx.step.run("work", work)


@app.function(id="rated", trigger="flow/rated", rate_limit=stepstone.RateLimit(5, "1m"))
def rated(ctx: stepstone.Context) -> Any:
    return "ran"


@app.function(id="single", trigger="flow/single", singleton={"key": "event.data.k"})
def single(ctx: stepstone.Context) -> Any:
    ctx.step.sleep("hold", 1.0)
