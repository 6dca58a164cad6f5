"""Small helpers shared by the behaviour tests."""

from __future__ import annotations

from typing import Any

import stepstone


def make_app(database_url: str, **options: Any) -> stepstone.App:
    options.setdefault("backoff", lambda attempt: 0.02)
    options.setdefault("retry_after_min", 0.01)
    return stepstone.App("test", database=database_url, **options)


def count_inline_commits(monkeypatch: Any, store_class: type) -> dict[str, int]:
    """Writes the stores of `store_class` committed inline (`_commit_inline`, on the event
    loop's thread), by kind: sends (intake scripts) and the rest."""
    counts = {"sends": 0, "others": 0}
    commit_inline = store_class._commit_inline

    def counting(self: Any, script: Any, *, statement: bool) -> tuple[bool, Any]:
        done, value = commit_inline(self, script, statement=statement)
        if done:
            send = "ingest" in getattr(script, "__qualname__", "")
            counts["sends" if send else "others"] += 1
        return done, value

    monkeypatch.setattr(store_class, "_commit_inline", counting)
    return counts


async def send_and_wait(
    app: stepstone.App, name: str, data: dict[str, Any] | None = None, *, timeout: float = 20.0
) -> stepstone.Run:
    """Send one event that triggers exactly one run, and return that run once it ended."""
    [event_id] = await app.send({"name": name, "data": data or {}})
    runs = await app.runs_for_event(event_id)
    assert len(runs) == 1, f"expected one run for {name}, got {runs}"
    return await app.wait_for_run(runs[0].id, timeout=timeout)


async def read_run(database_url: str, run_id: str) -> stepstone.Run:
    """A run as another process sees it: a fresh client App, closed afterwards."""
    app = stepstone.App("client", database=database_url)
    try:
        run = await app.get_run(run_id)
        assert run is not None, f"no run {run_id}"
        return run
    finally:
        await app.close()
