"""The other process of the prune workload (bench/prune.py): `stepstone prune`'s code path,
App.prune, timed. python -m bench.pruner URL OLDER_THAN

Prints one JSON line: when the prune began and ended (time.monotonic: CLOCK_MONOTONIC,
which Linux shares between processes) and what it deleted."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import stepstone


async def prune(url: str, older_than: str) -> dict[str, float]:
    app = stepstone.App("bench", database=url, retention=0)
    try:
        await app.store()  # opened before the clock starts, as the command opens it
        start = time.monotonic()
        done = await app.prune(older_than)
        end = time.monotonic()
    finally:
        await app.close()
    return {"start": start, "end": end, "runs": done.runs, "events": done.events}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(prune(sys.argv[1], sys.argv[2]))), flush=True)
