"""Writes of many requests of a batch in one statement each: a batch's lone step
checkpoints, and its run ends. Each stays fenced by its own lease; a merged write whose
lease was lost fails its check, and the dialect then reruns the requests one by one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .base import Lease
from .scripts.checkpoints import StepSave
from .scripts.intake import ingest
from .scripts.run_end import RunEnd
from .tx import Cursor, Deferred, Many, Tx, lease_lost, to_json


def merge_writes(tx: Tx, scripts: Sequence[Any]) -> dict[int, Deferred[None]]:
    """The batch's lone step checkpoints and run ends, each kind merged; their checks by
    position in `scripts` (the others run as scripts of their own)."""
    return merge_step_saves(tx, scripts) | merge_run_ends(tx, scripts)


def merge_step_saves(tx: Tx, scripts: Sequence[Any]) -> dict[int, Deferred[None]]:
    """Writes the lone step checkpoints among `scripts` in one statement; returns their
    checks by position."""
    saves: dict[tuple[str, str], tuple[int, StepSave]] = {}
    for n, each in enumerate(scripts):
        if isinstance(each, StepSave):
            # one row per step: the upsert cannot touch a row twice (the later save of
            # the same step, should one come, runs as a script of its own after it)
            saves.setdefault((each.lease.run_id, each.step.hashed_id), (n, each))
    if len(saves) < 2:
        return {}
    items = list(saves.values())
    cursor = tx("save_steps_fenced", rows=to_json([save.step_row() for _, save in items]))
    # each row is counted once, inserted or updated: one short, and some lease was lost.
    # Which one is not asked (it would take a row back per step): any check then fails,
    # and the dialect runs each save alone, which tells each its own outcome
    outcome = Deferred(_all_written(cursor, len(items), items[0][1].lease))
    return {n: outcome for n, _ in items}


def _all_written(cursor: Cursor, expected: int, lease: Lease) -> Callable[[], None]:
    def check() -> None:
        if cursor.rowcount != expected:
            lease_lost(lease)

    return check


def merge_run_ends(tx: Tx, scripts: Sequence[Any]) -> dict[int, Deferred[None]]:
    """Ends the runs among `scripts` that need no flow control released and start no
    runs, in six statements whatever their number; returns their checks by position.
    The statements are those of `RunEnd`, in its order: jobs, history, runs, open
    steps, waits, the announcing events."""
    ends: dict[str, tuple[int, RunEnd]] = {}
    for n, each in enumerate(scripts):
        if isinstance(each, RunEnd) and each.mergeable:
            ends.setdefault(each.lease.run_id, (n, each))
    if len(ends) < 2:
        return {}
    items = list(ends.values())
    jobs = tx("end_jobs", leases=to_json([[end.lease.run_id, end.lease.fence] for _, end in items]))
    history = [row for _, end in items for row in end.history_rows()]
    tx("insert_history_rows", rows=to_json(history))
    runs = tx("finish_runs", rows=to_json([end.run_row() for _, end in items]))
    tx("close_open_steps_many", rows=to_json([[end.lease.run_id, end.at] for _, end in items]))
    tx("delete_waits_many", ids=Many(ends))
    announced = [event for _, end in items for event in end.follow_up]
    for _, end in items:
        end.report.clear()
    # the batch's announcements together; the runs they cancel are reported by the first
    # end (any process that stored them announces them, once)
    ingest(tx, announced, items[0][1].report)
    found: list[tuple[set[str], dict[str, Any]]] = []

    def outcome() -> tuple[set[str], dict[str, Any]]:
        if not found:
            ended = {row["run_id"] for row in jobs.fetchall()}
            parents = {row["id"]: row for row in runs.fetchall()}  # with parent_run_id, parent_step
            found.append((ended, parents))
        return found[0]

    return {n: Deferred(_end_check(tx, end, outcome)) for n, end in items}


def _end_check(
    tx: Tx, end: RunEnd, outcome: Callable[[], tuple[set[str], dict[str, Any]]]
) -> Callable[[], None]:
    def check() -> None:
        ended, parents = outcome()
        if end.lease.run_id not in ended:
            lease_lost(end.lease)
        end.resume_parent(tx, parents.get(end.lease.run_id))

    return check
