"""Small helpers shared by the behaviour tests."""

from __future__ import annotations

from typing import Any

import stepstone


def make_app(database_url: str, **options: Any) -> stepstone.App:
    options.setdefault("backoff", lambda attempt: 0.02)
    options.setdefault("retry_after_min", 0.01)
    return stepstone.App("test", database=database_url, **options)


async def send_and_wait(
    app: stepstone.App, name: str, data: dict[str, Any] | None = None, *, timeout: float = 20.0
) -> stepstone.Run:
    """Send one event that triggers exactly one run, and return that run once it ended."""
    [event_id] = await app.send({"name": name, "data": data or {}})
    runs = await app.runs_for_event(event_id)
    assert len(runs) == 1, f"expected one run for {name}, got {runs}"
    return await app.wait_for_run(runs[0].id, timeout=timeout)
