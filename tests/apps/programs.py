"""Worker processes' app for the property test under kills: it runs any program of
tests/programs.py, sent as its trigger event's data, and appends every handler call to a
ledger file shared by the processes (tests/ledger.py)."""

from __future__ import annotations

import os
import threading
from typing import Any

import stepstone
from tests.ledger import Ledger
from tests.programs import from_data, interpret

app = stepstone.App("programs", backoff=lambda attempt: 0.0)
_ledger: Ledger | None = None


_opening = threading.Lock()  # handlers run in threads: one ledger per process


def _record(ctx: stepstone.Context, step_id: str) -> None:
    global _ledger
    with _opening:
        if _ledger is None:
            _ledger = Ledger(os.environ["PROGRAMS_LEDGER"], os.environ.get("WORKER_NAME", "?"))
    _ledger.started(ctx.run_id, step_id, ctx.attempt)


def _define(retries: int) -> None:
    # retries belong to a function's definition: one function per count a program may ask
    @app.function(id=f"program-r{retries}", trigger=f"model/run.r{retries}", retries=retries)
    async def run_program(ctx: stepstone.Context) -> Any:
        return await interpret(ctx, from_data(ctx.event.data["program"]), _record)


for _retries in range(3):
    _define(_retries)
