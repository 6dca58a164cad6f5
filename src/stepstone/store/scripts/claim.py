"""The claim: due runs leased to a worker, started, and loaded with their steps and events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...records import StepRecord
from ..base import (
    Claim,
    Lease,
)
from ..rows import (
    event_from_row,
    run_from_row,
    step_from_row,
)
from ..tx import (
    Cursor,
    Many,
    Tx,
    to_json,
)
from . import flow


class ClaimScript:
    """A claim's script. Its writes need not be on disk when it returns: should the
    database lose them in a crash, the runs are simply due again, as if never claimed;
    and the first checkpoint a run writes under the lease commits durably, which puts
    everything written before it (the claim included) on disk first. A dialect may then
    commit it without waiting for the disk (PostgreSQL: synchronous_commit off)."""

    __slots__ = ("script",)

    def __init__(self, script: Callable[[Tx], list[Claim]]) -> None:
        self.script = script

    def __call__(self, tx: Tx) -> list[Claim]:
        return self.script(tx)


def lease_and_start(tx: Tx, owner: str, until: float, now: float, ids: Many) -> Cursor:
    """Leases these jobs to `owner` and starts their runs, but for those asked to cancel
    (their worker ends them); returns the lease's (run_id, fence, cancel) rows."""
    leased = tx("lease_many", owner=owner, until=until, ids=ids)
    tx("mark_started_many", now=now, ids=ids)
    tx("insert_started_many", now=now, data=to_json({"worker": owner}), ids=ids)
    return leased


def claim_runs(
    tx: Tx, owner: str, limit: int, new_limit: int, now: float, lease_for: float, ahead: float
) -> list[Claim]:
    """Leases up to `limit` due runs (at most `new_limit` not started yet) to `owner`,
    starts them, and returns them with their steps and events."""
    # set-based, in phases that each send their statements before reading a
    # result: a claim costs the same few statements (and, pipelined, the same few
    # round trips) for one run as for fifty
    rows = tx("claim_due", due_by=now + ahead, now=now, limit=limit, new_limit=new_limit).fetchall()
    return _gate_and_lease(tx, owner, rows, now, lease_for)


def claim_runs_at_once(
    tx: Tx, owner: str, limit: int, new_limit: int, now: float, lease_for: float, ahead: float
) -> list[Claim]:
    """`claim_runs` for PostgreSQL: the runs without flow control are leased, started and
    read in the round trip that finds them (sql/postgres/own.sql); those with flow
    control then go through the gate as in `claim_runs`."""
    until, started = now + lease_for, to_json({"worker": owner})
    found = tx(
        "claim_at_once",
        due_by=now + ahead,
        now=now,
        limit=limit,
        new_limit=new_limit,
        owner=owner,
        until=until,
        data=started,
    )
    loaded = _Loaded(
        tx("claimed_runs", until=until, owner=owner),
        tx("claimed_steps", until=until, owner=owner),
        tx("claimed_events", until=until, owner=owner),
    )
    rows = found.fetchall()
    plain = [row for row in rows if row["fence"] is not None]  # leased by claim_at_once
    gated = [row for row in rows if row["fence"] is None]
    leased = {row["run_id"]: (row["fence"], bool(row["cancel"])) for row in plain}
    no_keys: dict[str, tuple[list[tuple[str, int]], int]] = {
        row["run_id"]: ([], row["holds"]) for row in plain
    }
    claims = loaded.claims(tx, owner, no_keys, leased, _due(plain, now), _taken(plain, owner))
    return claims + (_gate_and_lease(tx, owner, gated, now, lease_for) if gated else [])


def _due(rows: list[Any], now: float) -> dict[str, float]:
    """Released runs leased ahead of their time: when each is due."""
    return {row["run_id"]: row["available_at"] for row in rows if row["available_at"] > now}


def _taken(rows: list[Any], owner: str) -> set[str]:
    """Leases that expired while another worker held them (a released run has no owner)."""
    return {row["run_id"] for row in rows if row["owner"] not in (None, owner)}


def _gate_and_lease(
    tx: Tx, owner: str, rows: list[Any], now: float, lease_for: float
) -> list[Claim]:
    """Claims of the due `rows` (claim_due's) that flow control admits: leased, started,
    woken from a sleep that is over, and read with their steps and events."""
    gate = flow.Gate(tx, now)
    admitted: dict[str, tuple[list[tuple[str, int]], int]] = {}
    for row in rows:
        run_id, throttle = row["run_id"], row["throttle"]
        pairs = ((row["ckey1"], row["climit1"]), (row["ckey2"], row["climit2"]))
        keys = [(k, n) for k, n in pairs if k]
        if (keys or throttle) and not gate.admit(run_id, keys, throttle):
            continue  # the gate keeps count of what it let through
        admitted[run_id] = (keys, row["holds"])
    if not admitted:
        return []
    ids = Many(admitted)
    # a sleep that is over (or will be when its run is due) ends here, for the
    # whole claim at once, rather than by a checkpoint of its own from each run
    tx("end_due_sleeps", now=now, ids=ids)
    lease_rows = lease_and_start(tx, owner, now + lease_for, now, ids)
    for run_id, (_, holds) in admitted.items():
        if holds & flow.HOLDS_START_KEY:
            tx("flow_release", run_id=run_id, prefix="--")  # debounce and batch keys end at start
    loaded = _Loaded(
        tx("get_runs", ids=ids), tx("run_steps_many", ids=ids), tx("get_run_events", ids=ids)
    )
    # everything is sent: the results are read now, in one round trip
    leased = {r["run_id"]: (r["fence"], bool(r["cancel"])) for r in lease_rows.fetchall()}
    return loaded.claims(tx, owner, admitted, leased, _due(rows, now), _taken(rows, owner))


class _Loaded:
    """The runs, steps and events of a claim's leases, asked for: read by `claims`."""

    def __init__(self, runs: Cursor, steps: Cursor, events: Cursor) -> None:
        self.runs, self.steps, self.events = runs, steps, events

    def claims(
        self,
        tx: Tx,
        owner: str,
        admitted: dict[str, tuple[list[tuple[str, int]], int]],
        leased: dict[str, tuple[int, bool]],
        due: dict[str, float],
        taken: set[str],
    ) -> list[Claim]:
        runs = {row["id"]: row for row in self.runs.fetchall()}
        steps: dict[str, list[StepRecord]] = {}
        for row in self.steps.fetchall():
            steps.setdefault(row["run_id"], []).append(step_from_row(row))
        events = {r["id"]: event_from_row(r).event for r in self.events.fetchall()}
        claims = []
        for run_id, (keys, holds) in admitted.items():
            fence, cancel = leased[run_id]
            row = runs.get(run_id)
            if row is None:  # a job without its run cannot happen; drop it defensively
                tx("delete_job", run_id=run_id)
                continue
            run = run_from_row(row, steps.get(run_id, []))
            lease = Lease(run_id, fence, owner, tuple(k for k, _ in keys), holds)
            its_events = [events[i] for i in run.event_ids if i in events]
            claims.append(
                Claim(lease, run, its_events, cancel, due.get(run_id), taken_over=run_id in taken)
            )
        return claims
