"""An app whose steps save large outputs: it fills a disk quickly."""

from __future__ import annotations

import os
import resource
import signal
from typing import Any

import stepstone

app = stepstone.App("bulky", backoff=lambda attempt: 0.05)

if os.environ.get("BULKY_FREE_SPACE_ON_USR1"):
    # the disk-full test's "space comes back": lift this process's file-size limit
    signal.signal(
        signal.SIGUSR1,
        lambda *_: resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2),
    )


@app.function(id="bulky", trigger="bulky/go")
async def bulky(ctx: stepstone.Context) -> Any:
    n = ctx.event.data["n"]
    sizes = []
    for i in range(4):
        blob = await ctx.step.run(f"blob-{i}", lambda i=i: f"{n}-{i}-" + "x" * 60_000)
        sizes.append(len(blob))
    return {"n": n, "total": sum(sizes)}
