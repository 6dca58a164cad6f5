"""Large outputs: steps returning ~100 KiB of JSON each, one run after another and many
runs at once; beside the floor (one INSERT + COMMIT per step) writing the same bytes."""

from __future__ import annotations

import functools
import json
import random
from typing import Any

from . import stepstone_runner


def payload(size: int) -> tuple[dict[str, Any], str]:
    """An object whose compact JSON is `size` bytes or a little more: rows of an order
    export, random enough that PostgreSQL's TOAST compression cannot shrink it to nothing.
    Returns it with its JSON text (what the floor writes)."""
    rng = random.Random(size)
    rows: list[dict[str, Any]] = []
    text = ""
    while len(text) < size:
        for _ in range(50):
            rows.append(
                {
                    "id": len(rows),
                    "sku": f"{rng.getrandbits(48):012x}",
                    "qty": rng.randint(1, 99),
                    "price": round(rng.uniform(1, 500), 2),
                    "note": "".join(rng.choice("abcdefghij klmnop") for _ in range(16)),
                }
            )
        text = json.dumps({"rows": rows}, separators=(",", ":"))
    return {"rows": rows}, text


def define_large_loop(value: Any) -> stepstone_runner.Define:
    """The step loop of bench.stepstone_runner, each step returning `value`."""

    async def large(i: int) -> Any:
        return value

    return functools.partial(stepstone_runner.define_step_loop, handler=large)


def _with_bytes(out: dict[str, Any], size: int) -> dict[str, Any]:
    out = {**out, "bytes_per_step": size, "mb_per_s": out["steps_per_s"] * size / 1e6}
    if "floor_paired_steps_per_s" in out:
        out["floor_mb_per_s"] = out["floor_paired_steps_per_s"] * size / 1e6
    return out


async def sequential(url: str, steps: int, size: int) -> dict[str, Any]:
    """One run of `steps` large steps, with the floor writing the same text per commit right
    before and after it."""
    value, text = payload(size)
    out = await stepstone_runner.sequential(
        url, steps, paired_floor=True, define=define_large_loop(value), floor_output=text
    )
    return _with_bytes(out, len(text))


async def concurrent(url: str, runs: int, steps: int, size: int) -> dict[str, Any]:
    value, text = payload(size)
    out = await stepstone_runner.concurrent(url, runs, steps, define=define_large_loop(value))
    return _with_bytes(out, len(text))
