"""An app for the multi-process tests: every step execution appends a line to a ledger.

Each process writes its own file, `$STEPSTONE_TEST_LEDGER/<pid>.log`, one line per step
execution: `run_id step_id token pid started_at`. A step returns its token, so a test can
tell the execution whose result was saved from any other.
Run it with `python -m stepstone worker tests.apps.scale:app --database URL`.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stepstone

STEPS = 5


@dataclass(frozen=True)
class Execution:
    run_id: str
    step_id: str
    token: str
    pid: int
    started_at: float


_ledger_fd: int | None = None


def _record(run_id: str, step_id: str, token: str, started: float) -> None:
    global _ledger_fd
    if _ledger_fd is None:
        folder = Path(os.environ["STEPSTONE_TEST_LEDGER"])
        path = folder / f"{os.getpid()}.log"
        _ledger_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    # one write of a short line to an O_APPEND file: whole, even if the process dies next
    os.write(_ledger_fd, f"{run_id} {step_id} {token} {os.getpid()} {started!r}\n".encode())


def read_ledger(folder: Path) -> list[Execution]:
    out = []
    for path in sorted(folder.glob("*.log")):
        for line in path.read_text().splitlines():
            run_id, step_id, token, pid, started = line.split(" ")
            out.append(Execution(run_id, step_id, token, int(pid), float(started)))
    return out


def make_app(database: str | None = None) -> stepstone.App:
    app = stepstone.App("scale", database=database, backoff=lambda attempt: 0.05)

    @app.function(id="five-steps", trigger="scale/run")
    async def five_steps(ctx: stepstone.Context) -> dict[str, Any]:
        pause = float(ctx.event.data.get("pause", 0))
        tokens = []
        for n in range(STEPS):
            tokens.append(await ctx.step.run(f"step-{n}", _step, ctx.run_id, f"step-{n}", pause))
        return {"tokens": tokens}

    @app.function(id="slow-step", trigger="scale/slow")
    async def slow_step(ctx: stepstone.Context) -> dict[str, Any]:
        pause = float(ctx.event.data["pause"])
        slow = await ctx.step.run("slow", _step, ctx.run_id, "slow", pause)
        after = await ctx.step.run("after", _step, ctx.run_id, "after", 0.0)
        return {"slow": slow, "after": after}

    return app


async def _step(run_id: str, step_id: str, pause: float) -> str:
    started = time.time()
    token = uuid.uuid4().hex
    if pause:
        await asyncio.sleep(pause)
    _record(run_id, step_id, token, started)
    return token


app = make_app()
