"""Flow control as transaction scripts: admitting runs at ingest, gating them at claim.

Each decision about a flow key first takes that key's lock (`lock_key`: an advisory
lock on PostgreSQL; nothing on SQLite, whose writes are serialized), so a limit holds
however many processes ingest and claim at once.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ...records import HistoryEntry, RunStatus
from ..base import IntakeReport, NewRun
from ..tx import Tx, insert_history
from .endings import cancel_run

PARKED = 1e15  # a job parked for a concurrency slot is due only when a slot frees
DAY = 86400.0
HOLDS_START_KEY = 1  # a debounce or batch key, given back when the run starts
HOLDS_END_KEY = 2  # a singleton key, given back when the run ends


def _get(tx: Tx, key: str) -> Any:
    """The flow key's row, locked (None if nobody holds it): the run that holds it, its
    value (a rate's next arrival time), how many runs it counts (a batch), since when."""
    tx("lock_key", key=key)
    return tx("flow_get", key=key).fetchone()


def _rate_allows(tx: Tx, key: str, limit: int, period: float, tau: float, now: float) -> float:
    """GCRA: 0 when one more is allowed now (and counted), else the seconds to wait."""
    row = _get(tx, key)
    interval = period / limit
    tat = max(now, row["value"] if row is not None and row["value"] is not None else now)
    if tat - tau > now + 1e-9:
        return tat - tau - now
    tx("flow_put", key=key, run_id=None, value=tat + interval, count=0, since=now)
    return 0.0


def admit(tx: Tx, run: NewRun, report: IntakeReport) -> NewRun | None:
    """Apply a new run's flow control at ingest.

    Returns the run to insert (maybe skipped, delayed or reordered), or None when the
    event joined a run that is already waiting (debounce, batch).
    """
    flow, now = run.flow, run.created_at
    if flow.idempotency is not None:
        row = _get(tx, flow.idempotency)
        if row is not None and row["since"] is not None and row["since"] + DAY > now:
            return _skipped(run, f"idempotency: run {row['run_id']} already ran for this key")
        tx("flow_put", key=flow.idempotency, run_id=run.id, value=None, count=0, since=now)
    if flow.rate_limit is not None:
        key, limit, period = flow.rate_limit
        if _rate_allows(tx, key, limit, period, period - period / limit, now) > 0:
            return _skipped(run, f"rate limit: more than {limit} runs in {period:g}s")
    holds = 0
    if flow.singleton is not None:
        key, mode = flow.singleton
        row = _get(tx, key)
        holder = None if row is None else row["run_id"]
        active = _is_active(tx, holder)
        if active and mode == "skip":
            return _skipped(run, f"singleton: run {holder or ''} is still active")
        if active and holder is not None:
            cancel_run(tx, holder, now, report)
            insert_history(tx, holder, HistoryEntry(now, "cancel.singleton", {"by": run.id}))
        tx("flow_put", key=key, run_id=run.id, value=None, count=0, since=now)
        holds |= HOLDS_END_KEY
    available_at = run.available_at - flow.priority
    if flow.debounce is not None:
        key, period, timeout = flow.debounce
        row = _get(tx, key)
        if row is not None and row["run_id"] is not None and row["since"] is not None:
            holder, since = row["run_id"], row["since"]
            due = now + period if timeout is None else min(now + period, since + timeout)
            tx("set_run_events", event_ids=json.dumps(run.event_ids), id=holder)
            for event_id in run.event_ids:
                tx("link_run_event", event_id=event_id, run_id=holder)
            tx("move_queued_job", available_at=due, run_id=holder)
            insert_history(tx, holder, HistoryEntry(now, "debounced", {"event_ids": run.event_ids}))
            return None
        tx("flow_put", key=key, run_id=run.id, value=None, count=0, since=now)
        available_at = now + period
        holds |= HOLDS_START_KEY
    if flow.batch is not None:
        key, max_size, timeout = flow.batch
        row = _get(tx, key)
        if row is not None and row["run_id"] is not None:
            holder, count = row["run_id"], row["count"] + 1
            held = tx("run_event_ids", id=holder).fetchone()["event_ids"]
            ids = json.loads(held) + run.event_ids
            tx("set_run_events", event_ids=json.dumps(ids), id=holder)
            for event_id in run.event_ids:
                tx("link_run_event", event_id=event_id, run_id=holder)
            if count >= max_size:
                tx("flow_delete", key=key)
                tx("move_queued_job", available_at=now, run_id=holder)
            else:
                tx("flow_put", key=key, run_id=holder, value=None, count=count, since=row["since"])
            insert_history(tx, holder, HistoryEntry(now, "batched", {"size": len(ids)}))
            return None
        if max_size > 1:
            tx("flow_put", key=key, run_id=run.id, value=None, count=1, since=now)
            available_at = now + timeout
            holds |= HOLDS_START_KEY
    return replace(run, available_at=available_at, holds=holds)


def _skipped(run: NewRun, reason: str) -> NewRun:
    return replace(run, status=RunStatus.SKIPPED, reason=reason)


def _is_active(tx: Tx, run_id: str | None) -> bool:
    if run_id is None:
        return False
    row = tx("run_status", id=run_id).fetchone()
    return row is not None and not RunStatus(row["status"]).is_final


def job_columns(run: NewRun) -> dict[str, Any]:
    """queued_at, ckey1, climit1, ckey2, climit2, throttle, holds of a new run's job."""
    keys = list(run.flow.concurrency) + [(None, None)] * (2 - len(run.flow.concurrency))
    throttle = None if run.flow.throttle is None else json.dumps(run.flow.throttle)
    return {
        "queued_at": run.available_at,
        "ckey1": keys[0][0],
        "climit1": keys[0][1],
        "ckey2": keys[1][0],
        "climit2": keys[1][1],
        "throttle": throttle,
        "holds": run.holds,
    }


class Gate:
    """Decides, inside one claim transaction, which due jobs may start now."""

    def __init__(self, tx: Tx, now: float) -> None:
        self._tx = tx
        self._now = now
        self._active: dict[str, int] = {}

    def admit(self, run_id: str, keys: list[tuple[str, int]], throttle: str | None) -> bool:
        tx, now = self._tx, self._now
        for key, limit in keys:
            if key not in self._active:
                tx("lock_key", key=key)
                self._active[key] = tx("count_active", key=key, now=now).fetchone()["active"]
            if self._active[key] >= limit:
                tx("park", key=key, available_at=PARKED, run_id=run_id)
                insert_history(tx, run_id, HistoryEntry(now, "concurrency.waiting", {"key": key}))
                return False
        if throttle is not None:
            key, limit, period, burst = json.loads(throttle)
            wait = _rate_allows(tx, key, limit, period, (burst - 1) * period / limit, now)
            if wait > 0:
                tx("delay_job", available_at=now + wait, run_id=run_id)
                insert_history(tx, run_id, HistoryEntry(now, "throttled", {"until": now + wait}))
                return False
            tx("clear_throttle", run_id=run_id)
        for key, _ in keys:
            self._active[key] += 1
        return True


def free_slots(tx: Tx, keys: tuple[str, ...], now: float) -> None:
    """A run stopped executing: let the longest-waiting parked job of each key go."""
    for key in keys:
        tx("lock_key", key=key)
        tx("unpark", now=now, key=key, limit=1)
