"""An app for process-level tests: every step execution appends a line to a ledger file.

The ledger path, this process's name and how long the slow step takes come from the
environment, so a test can tell which worker process ran which step, and how often.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import stepstone

app = stepstone.App("ledger", backoff=lambda attempt: 0.05)


def record(what: str) -> None:
    name = os.environ.get("WORKER_NAME", "?")
    with open(os.environ["LEDGER"], "a") as ledger:
        ledger.write(f"{what} {name}\n")
        ledger.flush()
        os.fsync(ledger.fileno())


@app.function(id="three-steps", trigger="ledger/go")
async def three_steps(ctx: stepstone.Context) -> Any:
    key = ctx.event.data.get("key", "")

    def first() -> str:
        record(f"first{key}")
        return "first"

    def slow() -> str:
        record(f"slow-start{key}")
        time.sleep(float(os.environ.get("SLOW_SECONDS", "0")))
        record(f"slow-end{key}")
        return os.environ.get("WORKER_NAME", "?")

    def last() -> str:
        record(f"last{key}")
        return "last"

    a = await ctx.step.run("first", first)
    if os.environ.get("STOP_BETWEEN_STEPS") == os.environ.get("WORKER_NAME"):
        os.kill(os.getpid(), signal.SIGSTOP)  # a pause (GC, SIGSTOP) between two steps
    b = await ctx.step.run("slow", slow)
    c = await ctx.step.run("last", last)
    return [a, b, c]
