"""The Store contract: every store (memory, SQLite, PostgreSQL) behaves the same.

These tests drive the Store interface directly, with times chosen by the test (no clock,
no worker), so each rule is checked on its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from stepstone.errors import AppIdTakenError, LeaseLostError
from stepstone.ids import hash_step_id, new_id
from stepstone.records import Event, HistoryEntry, RunStatus, StepRecord, StepStatus
from stepstone.store import (
    Claim,
    IntakeReport,
    NewEvent,
    NewRun,
    Pruned,
    Store,
    SyncedAppRecord,
    Wait,
    WaitKind,
    run_search,
    store_from_url,
)

T0 = 1_700_000_000.0  # a fixed "now" for every test
LEASE = 30.0


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = store_from_url(database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def new_event(
    name: str = "test/event",
    *,
    event_id: str | None = None,
    data: dict[str, Any] | None = None,
    functions: tuple[str, ...] = ("fn",),
    at: float = T0,
) -> NewEvent:
    event = Event(name=name, data=data or {}, id=event_id or new_id(), ts=int(at * 1000))
    runs = [NewRun(new_id(), fn, [event.id or ""], at, at) for fn in functions]
    return NewEvent(event, json.dumps(event.data), at, runs)


async def queue_runs(store: Store, count: int, *, at: float = T0, fn: str = "fn") -> list[str]:
    """Ingest `count` events, each starting one run of `fn` due at `at`; return run ids."""
    items = [new_event(functions=(fn,), at=at) for _ in range(count)]
    await store.ingest(items)
    return [item.runs[0].id for item in items]


async def claim_one(store: Store, owner: str = "w1", now: float = T0) -> Claim:
    [claim] = await store.claim(owner, 1, now, LEASE)
    return claim


def step(name: str, status: StepStatus = StepStatus.COMPLETED, **fields: Any) -> StepRecord:
    fields.setdefault("attempts", 1)
    fields.setdefault("started_at", T0)
    return StepRecord(id=name, hashed_id=hash_step_id(name), status=status, **fields)


# -- intake ---------------------------------------------------------------------------------
async def test_ingest_stores_events_and_ignores_a_repeated_id(store: Store) -> None:
    first = new_event(event_id="order-1", data={"n": 1})
    again = new_event(event_id="order-1", data={"n": 2})
    assert await store.ingest([first]) == IntakeReport(new=[True])
    assert await store.ingest([again]) == IntakeReport(new=[False])
    stored = await store.get_event("order-1")
    assert stored is not None
    assert stored.event.data == {"n": 1}  # the first one wins
    assert stored.run_ids == [first.runs[0].id]  # the repeat started no run
    assert await store.get_run(again.runs[0].id) is None


async def test_a_repeated_id_within_one_batch_is_ignored_too(store: Store) -> None:
    a, b = new_event(event_id="dup"), new_event(event_id="dup")
    assert await store.ingest([a, b]) == IntakeReport(new=[True, False])
    assert [r.id for r in await store.runs_for_event("dup")] == [a.runs[0].id]


async def test_runs_for_event_lists_every_run_the_event_started(store: Store) -> None:
    item = new_event(functions=("fn-a", "fn-b"))
    await store.ingest([item])
    runs = await store.runs_for_event(item.event.id or "")
    assert sorted(r.function_id for r in runs) == ["fn-a", "fn-b"]
    assert all(r.status is RunStatus.QUEUED for r in runs)
    assert await store.runs_for_event("no-such-event") == []


async def test_create_runs_starts_runs_with_copied_steps(store: Store) -> None:
    item = new_event(functions=())
    await store.ingest([item])
    rerun = NewRun(new_id(), "fn", [item.event.id or ""], T0, T0)
    kept = step("fetch", output={"rows": [1, 2]}, ended_at=T0 + 1)
    await store.create_runs([rerun], [(rerun.id, kept)])
    run = await store.get_run(rerun.id)
    assert run is not None and run.status is RunStatus.QUEUED
    assert run.steps == [kept]
    claim = await claim_one(store)
    assert claim.run.id == rerun.id and claim.run.steps == [kept]
    assert [e.id for e in claim.events] == [item.event.id]


# -- the queue ------------------------------------------------------------------------------
async def test_claim_leases_due_runs_oldest_first(store: Store) -> None:
    [late] = await queue_runs(store, 1, at=T0 - 1)
    [early] = await queue_runs(store, 1, at=T0 - 5)
    [future] = await queue_runs(store, 1, at=T0 + 60)
    first = await claim_one(store, "w1")
    assert first.run.id == early
    assert first.run.status is RunStatus.RUNNING and first.run.started_at == T0
    rest = await store.claim("w1", 10, T0, LEASE)
    assert [c.run.id for c in rest] == [late]  # not the future one, not the leased one
    assert await store.claim("w2", 10, T0, LEASE) == []
    running = await store.get_run(early)
    assert running is not None and running.status is RunStatus.RUNNING
    assert running.started_at == T0
    assert future not in {c.run.id for c in rest}


async def test_claim_takes_started_runs_before_runs_not_started(store: Store) -> None:
    [sleeper] = await queue_runs(store, 1, at=T0 - 10)
    lease = (await claim_one(store, now=T0 - 10)).lease
    await store.reschedule(lease, at=T0 - 1, now=T0 - 10, status=RunStatus.SLEEPING)
    # queued before the sleeper's wake-up was due: first in plain due order
    waiting = await queue_runs(store, 3, at=T0 - 5)
    first = await store.claim("w1", 2, T0, LEASE)
    assert [c.run.id for c in first] == [sleeper, waiting[0]]
    rest = await store.claim("w1", 10, T0, LEASE)
    assert [c.run.id for c in rest] == waiting[1:]


async def test_claim_starts_at_most_the_new_runs_it_is_allowed(store: Store) -> None:
    """A paced worker (engine/pacing.py) limits the runs not started yet, not the others."""
    [resumed_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    await store.reschedule(lease, at=T0 + 1, now=T0, status=RunStatus.SLEEPING)
    await queue_runs(store, 3)
    [only] = await store.claim("w1", 10, T0 + 1, LEASE, starts=0)
    assert only.run.id == resumed_id
    assert len(await store.claim("w1", 10, T0 + 1, LEASE, starts=2)) == 2
    assert len(await store.claim("w1", 10, T0 + 1, LEASE)) == 1


async def test_claim_respects_its_limit(store: Store) -> None:
    await queue_runs(store, 5)
    first = await store.claim("w1", 3, T0, LEASE)
    second = await store.claim("w2", 3, T0, LEASE)
    assert len(first) == 3 and len(second) == 2
    assert not {c.run.id for c in first} & {c.run.id for c in second}


async def test_an_expired_lease_is_taken_over_with_a_new_fence(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    old = await claim_one(store, "w1")
    assert await store.claim("w2", 1, T0 + LEASE - 1, LEASE) == []
    new = await claim_one(store, "w2", now=T0 + LEASE + 1)
    assert new.lease.run_id == run_id and new.lease.fence > old.lease.fence


async def test_a_stale_fence_cannot_write(store: Store) -> None:
    await queue_runs(store, 1)
    old = (await claim_one(store, "w1")).lease
    new = (await claim_one(store, "w2", now=T0 + LEASE + 1)).lease
    with pytest.raises(LeaseLostError, match="stale"):
        await store.save_step(old, step("a", output="from w1"), json.dumps("from w1"))
    with pytest.raises(LeaseLostError):
        await store.finish(old, status=RunStatus.COMPLETED, output_json="1", error=None, at=T0)
    with pytest.raises(LeaseLostError):
        await store.reschedule(old, at=T0, now=T0, status=RunStatus.SLEEPING)
    await store.save_step(new, step("a", output="from w2"), json.dumps("from w2"))
    run = await store.get_run(new.run_id)
    assert run is not None
    assert run.status is RunStatus.RUNNING
    assert [s.output for s in run.steps] == ["from w2"]


async def test_a_refused_write_among_concurrent_ones_undoes_nothing_else(store: Store) -> None:
    """Writes sent at once may share a transaction (group commit); one refused among them
    is refused alone, and the others are all saved."""
    await queue_runs(store, 5)
    claims = await store.claim("w1", 5, T0, LEASE)
    stale = claims[2].lease
    await store.finish(stale, status=RunStatus.COMPLETED, output_json=None, error=None, at=T0)
    entry = HistoryEntry(T0, "log", {"message": "hi"})
    writes = [
        store.save_step(claims[0].lease, step("a", output=0), "0"),
        store.save_step(claims[1].lease, step("a", output=1), "1", [entry]),
        store.save_step(stale, step("a", output=2), "2"),
        store.finish(
            claims[3].lease, status=RunStatus.COMPLETED, output_json="3", error=None, at=T0
        ),
        store.save_step(claims[4].lease, step("a", output=4), "4"),
    ]
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(r).__name__ for r in results] == [
        "NoneType",
        "NoneType",
        "LeaseLostError",
        "IntakeReport",
        "NoneType",
    ]
    for index in (0, 1, 4):
        run = await store.get_run(claims[index].lease.run_id, with_history=True)
        assert run is not None and [s.output for s in run.steps] == [index]
    logged = await store.get_run(claims[1].lease.run_id, with_history=True)
    assert logged is not None and "log" in [h.kind for h in logged.history]
    finished = await store.get_run(claims[3].lease.run_id)
    assert finished is not None and finished.status is RunStatus.COMPLETED
    ended = await store.get_run(stale.run_id)
    assert ended is not None and ended.steps == []


async def test_run_ends_sent_at_once_each_end_their_own_run(store: Store) -> None:
    """Run ends sent together may be written together (group commit, or one statement
    per table): each still ends only its own run, under its own lease, with its own
    outcome, history, waits, announcing event and invoking parent."""
    [parent_id] = await queue_runs(store, 1, fn="parent")
    parent = (await claim_one(store, "w0")).lease
    invoking = step("call", StepStatus.INVOKING, kind="invoke", wake_at=T0 + 3600)
    child_event = new_event("test/invoked", functions=("child",))
    child = child_event.runs[0]
    child_event.runs[0] = NewRun(
        child.id,
        "child",
        child.event_ids,
        T0,
        T0,
        parent_run_id=parent_id,
        parent_step=invoking.hashed_id,
    )
    await store.start_invoke(parent, invoking, child_event)
    await store.reschedule(parent, at=T0 + 3600, now=T0, status=RunStatus.WAITING)
    queued = await queue_runs(store, 4)
    claims = {c.run.id: c.lease for c in await store.claim("w1", 5, T0, LEASE)}
    assert set(claims) == {child.id, *queued}
    stale = claims[queued[2]]
    await store.finish(stale, status=RunStatus.COMPLETED, output_json=None, error=None, at=T0)
    # the first run also waits for an event: its end must take the wait away
    waiting = step("wait", StepStatus.WAITING, kind="wait", wake_at=T0 + 3600)
    wait = Wait(queued[0], waiting.hashed_id, "shop/paid", None, {"name": "x"}, T0 + 3600)
    await store.register_wait(claims[queued[0]], waiting, wait)
    error = {"name": "ValueError", "message": "bad", "stack": "..."}
    log = HistoryEntry(T0 + 1, "log", {"message": "last words"})
    announced = new_event("test/finished", functions=(), at=T0 + 2)
    ends = [
        store.finish(
            claims[queued[0]],
            status=RunStatus.COMPLETED,
            output_json='{"n": 0}',
            error=None,
            at=T0 + 2,
            follow_up=[announced],
            history=[log],
        ),
        store.finish(
            claims[queued[1]], status=RunStatus.FAILED, output_json=None, error=error, at=T0 + 3
        ),
        store.finish(
            claims[child.id],
            status=RunStatus.COMPLETED,
            output_json='"done"',
            error=None,
            at=T0 + 6,
        ),
    ]
    assert await asyncio.gather(*ends) == [IntakeReport()] * 3
    # one refused among them: the others still end
    ends = [
        store.finish(stale, status=RunStatus.COMPLETED, output_json="9", error=None, at=T0 + 4),
        store.finish(
            claims[queued[3]], status=RunStatus.COMPLETED, output_json="3", error=None, at=T0 + 5
        ),
    ]
    results = await asyncio.gather(*ends, return_exceptions=True)
    assert [type(r).__name__ for r in results] == ["LeaseLostError", "IntakeReport"]
    first = await store.get_run(queued[0], with_history=True)
    assert first is not None and first.status is RunStatus.COMPLETED
    assert first.output == {"n": 0} and first.ended_at == T0 + 2
    assert [h.kind for h in first.history] == ["queued", "started", "log", "completed"]
    # its open wait was closed by its end, at the end's time
    assert [(s.id, s.status, s.ended_at) for s in first.steps] == [
        ("wait", StepStatus.CANCELLED, T0 + 2)
    ]
    assert await store.get_event(announced.event.id or "") is not None
    failed = await store.get_run(queued[1], with_history=True)
    assert failed is not None and failed.status is RunStatus.FAILED and failed.error == error
    assert failed.history[-1].kind == "failed" and failed.history[-1].data == {"error": error}
    kept = await store.get_run(stale.run_id)
    assert kept is not None and kept.output is None and kept.ended_at == T0  # its first end
    last = await store.get_run(queued[3])
    assert last is not None and last.output == 3
    # the invoking parent got the child's output and is due again
    resumed = await store.get_run(parent_id)
    assert resumed is not None and resumed.steps[0].status is StepStatus.COMPLETED
    assert resumed.steps[0].output == "done"
    [again] = await store.claim("w1", 10, T0 + 7, LEASE)
    assert again.run.id == parent_id  # every other job is gone
    # the ended run's wait is gone: a matching event resumes nothing
    paid = new_event("shop/paid", functions=(), at=T0 + 8)
    assert await store.ingest([paid]) == IntakeReport(new=[True], cancelled=[])
    assert await store.claim("w2", 10, T0 + 9, LEASE) == []


async def test_writes_queued_before_close_are_saved_and_later_ones_refused(
    store: Store,
) -> None:
    await queue_runs(store, 5)
    claims = await store.claim("w1", 5, T0, LEASE)
    pending = [
        asyncio.ensure_future(store.save_step(c.lease, step("a", output=i), str(i)))
        for i, c in enumerate(claims)
    ]
    await asyncio.sleep(0)  # queued, not yet committed
    await store.close()
    await asyncio.wait_for(asyncio.gather(*pending), 10)  # none failed, none hangs
    with pytest.raises(RuntimeError, match="not open"):
        await store.save_step(claims[0].lease, step("b"), "1")
    if getattr(store, "url", "") == "memory://":
        return  # a closed in-memory database is gone
    await store.open()
    for index, claim in enumerate(claims):
        run = await store.get_run(claim.run.id)
        assert run is not None and [s.output for s in run.steps] == [index]


async def test_renew_extends_live_leases_and_reports_lost_ones(store: Store) -> None:
    kept_id, lost_id = await queue_runs(store, 2)
    claims = {c.run.id: c.lease for c in await store.claim("w1", 2, T0, LEASE)}
    # renewing keeps the run ours past its first lease's end
    assert await store.renew([claims[kept_id]], T0 + 2 * LEASE) == ([], [])
    taken = await claim_one(store, "w2", now=T0 + LEASE + 1)
    assert taken.run.id == lost_id
    lost, cancel = await store.renew(list(claims.values()), T0 + 3 * LEASE)
    assert lost == [lost_id] and cancel == []


async def test_renew_reports_an_ended_run_as_lost(store: Store) -> None:
    await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    await store.finish(lease, status=RunStatus.COMPLETED, output_json=None, error=None, at=T0)
    assert await store.renew([lease], T0 + LEASE) == ([lease.run_id], [])


async def test_a_renewal_after_the_release_leaves_the_due_time_alone(store: Store) -> None:
    """A worker's renewal may run just after one of its runs went to sleep: the sleeping
    run must still wake at its time, not a lease later."""
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    await store.reschedule(lease, at=T0 + 10, now=T0, status=RunStatus.SLEEPING)
    assert await store.renew([lease], T0 + LEASE) == ([run_id], [])
    assert await store.next_due() == T0 + 10
    woken = await claim_one(store, now=T0 + 10)
    assert woken.run.id == run_id


async def test_release_hands_live_leases_back_at_once(store: Store) -> None:
    """A stopping worker releases its runs: each is due at the time given (a held run
    keeps its due time), and another worker claims it with a new fence; a lease that was
    lost or whose run ended is left alone."""
    [lost_id] = await queue_runs(store, 1)
    lost = await claim_one(store, "w1")
    now = T0 + LEASE + 1
    assert (await claim_one(store, "w2", now=now)).run.id == lost_id  # taken over
    kept_id, held_id, ended_id = await queue_runs(store, 3, at=now)
    leases = {c.run.id: c.lease for c in await store.claim("w1", 3, now, LEASE)}
    await store.finish(
        leases[ended_id], status=RunStatus.COMPLETED, output_json=None, error=None, at=now
    )
    pairs = [
        (leases[kept_id], now),
        (leases[held_id], now + 0.5),
        (leases[ended_id], now),
        (lost.lease, now),
    ]
    assert sorted(await store.release(pairs, now, "w1")) == sorted([kept_id, held_id])
    assert await store.next_due() == now  # not a lease later
    [again] = await store.claim("w3", 5, now, LEASE)
    assert again.run.id == kept_id and again.lease.fence == leases[kept_id].fence + 1
    [early] = await store.claim("w3", 5, now + 0.5, LEASE)
    assert early.run.id == held_id
    run = await store.get_run(kept_id, with_history=True)
    assert run is not None
    assert [h.data for h in run.history if h.kind == "released"] == [{"worker": "w1"}]
    assert await store.release([], now, "w1") == []


async def test_backlog_counts_runs_due_and_not_leased(store: Store) -> None:
    assert await store.backlog(T0) == (0, None)
    await queue_runs(store, 2, at=T0 - 5)
    await queue_runs(store, 1, at=T0 + 5)  # not due yet
    assert await store.backlog(T0) == (2, T0 - 5)
    await claim_one(store, now=T0)  # the oldest, leased: no longer waiting
    count, oldest = await store.backlog(T0)
    assert count == 1 and oldest is not None and T0 - 5 <= oldest <= T0
    assert (await store.backlog(T0 + LEASE + 1))[0] == 3  # an expired lease waits again


async def test_prune_deletes_finished_runs_before_the_cutoff_in_batches(store: Store) -> None:
    ended = await queue_runs(store, 3)
    for claim in await store.claim("w1", 3, T0, LEASE):
        await store.save_step(claim.lease, step("a"), '"out"', [HistoryEntry(T0, "log", {})])
        await store.finish(
            claim.lease, status=RunStatus.COMPLETED, output_json="1", error=None, at=T0 + 1
        )
    [recent] = await queue_runs(store, 1, at=T0 + 50)
    recent_lease = (await claim_one(store, now=T0 + 50)).lease
    await store.finish(
        recent_lease, status=RunStatus.FAILED, output_json=None, error=None, at=T0 + 50
    )
    going = await _sleeping_run(store, nap=T0 + 10**7)  # claimed at T0, never ends
    lonely = new_event("nobody/listens", functions=(), at=T0)
    await store.ingest([lonely])
    assert await store.prune(T0 + 40, limit=2) == Pruned(2, 2)  # a batch: the oldest first
    assert await store.prune(T0 + 40, limit=2) == Pruned(1, 2)
    assert await store.prune(T0 + 40, limit=2) == Pruned(0, 0)
    for run_id in ended:
        assert await store.get_run(run_id) is None
    assert await store.get_event(lonely.event.id or "") is None
    kept = await store.get_run(recent)
    assert kept is not None and kept.status is RunStatus.FAILED  # ended after the cutoff
    still = await store.get_run(going, with_history=True)
    assert still is not None and still.status is RunStatus.SLEEPING and still.steps
    assert still.event_ids and await store.get_event(still.event_ids[0]) is not None
    assert await store.next_due() == T0 + 10**7  # its job is untouched
    assert await store.prune(T0 + 10**8, limit=10) == Pruned(1, 1)  # the recent one
    assert await store.get_run(going) is not None


async def test_a_run_woken_while_leased_is_released_due_now(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    waiting = step("wait", StepStatus.WAITING, kind="wait")
    await store.register_wait(
        lease, waiting, Wait(run_id, waiting.hashed_id, "go", None, {}, T0 + 99)
    )
    await store.ingest([new_event("go", functions=())])  # resumes the wait: wakes the run
    assert await store.release([(lease, T0 + 50)], T0 + 1, "w1") == [run_id]
    assert await store.next_due() == T0 + 1


async def _sleeping_run(store: Store, **sleeps: float) -> str:
    """A run claimed at T0 that sleeps in the named steps until their times, released
    until the first of them."""
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    for name, until in sleeps.items():
        napping = step(name, StepStatus.SLEEPING, kind="sleep", wake_at=until)
        await store.save_step(lease, napping, None)
    await store.reschedule(lease, at=min(sleeps.values()), now=T0, status=RunStatus.SLEEPING)
    return run_id


async def test_the_claim_that_wakes_a_run_ends_its_sleeps_that_are_over(store: Store) -> None:
    run_id = await _sleeping_run(store, nap=T0 + 10, rest=T0 + 99)
    woken = await claim_one(store, now=T0 + 10.5)
    steps = {s.id: s for s in woken.run.steps}
    assert steps["nap"].status is StepStatus.COMPLETED and steps["nap"].ended_at == T0 + 10.5
    assert steps["rest"].status is StepStatus.SLEEPING  # not due yet: left alone
    saved = await store.get_run(run_id)
    assert saved is not None
    assert {s.id: s.status for s in saved.steps} == {
        "nap": StepStatus.COMPLETED,
        "rest": StepStatus.SLEEPING,
    }


async def test_a_sleeping_run_is_claimed_ahead_with_its_due_time(store: Store) -> None:
    """claim(ahead=...) takes a released run due within `ahead`, says when it is due, and
    ends only the sleeps due by then, at their own time; a live lease is never taken
    before it expires."""
    run_id = await _sleeping_run(store, nap=T0 + 10, later=T0 + 10.05)
    [live_id] = await queue_runs(store, 1, at=T0 + 9.9 - LEASE)
    live = await claim_one(store, "w2", now=T0 + 9.9 - LEASE)  # its lease ends at T0 + 9.9
    assert live.run.id == live_id
    assert await store.claim("w1", 5, T0 + 9.85, LEASE) == []
    [early] = await store.claim("w1", 5, T0 + 9.85, LEASE, ahead=0.2)
    assert early.run.id == run_id and early.due == T0 + 10
    steps = {s.id: s for s in early.run.steps}
    assert steps["nap"].status is StepStatus.COMPLETED and steps["nap"].ended_at == T0 + 10
    assert steps["later"].status is StepStatus.SLEEPING  # due after its run: left alone
    [taken] = await store.claim("w1", 5, T0 + 9.91, LEASE, ahead=0.2)
    assert taken.run.id == live_id and taken.due is None  # once its lease had ended


async def test_reschedule_releases_the_run_until_its_time(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    assert await store.next_due() == T0 + LEASE  # the lease's end
    await store.reschedule(lease, at=T0 + 10, now=T0, status=RunStatus.SLEEPING, attempt=2)
    assert await store.next_due() == T0 + 10
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.SLEEPING and run.attempt == 2
    assert await store.claim("w1", 1, T0 + 9, LEASE) == []
    again = await claim_one(store, "w2", now=T0 + 10)
    assert again.run.id == run_id and again.lease.fence > lease.fence
    assert again.run.attempt == 2


async def test_next_due_is_none_without_jobs(store: Store) -> None:
    assert await store.next_due() is None


async def test_finish_ends_the_run_and_ingests_follow_up_events(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    follow_up = new_event("test/finished", functions=("on-finish",), at=T0 + 1)
    await store.finish(
        lease,
        status=RunStatus.COMPLETED,
        output_json=json.dumps({"ok": True}),
        error=None,
        at=T0 + 1,
        follow_up=[follow_up],
    )
    run = await store.get_run(run_id, with_history=True)
    assert run is not None
    assert run.status is RunStatus.COMPLETED and run.output == {"ok": True}
    assert run.ended_at == T0 + 1
    assert [h.kind for h in run.history] == ["queued", "started", "completed"]
    # the run's job is gone; the follow-up event's run is the only one due
    [next_claim] = await store.claim("w1", 10, T0 + 1, LEASE)
    assert next_claim.run.id == follow_up.runs[0].id


async def test_finish_failed_keeps_the_error(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    error = {"name": "ValueError", "message": "bad", "stack": "..."}
    await store.finish(lease, status=RunStatus.FAILED, output_json=None, error=error, at=T0)
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED and run.error == error


async def test_a_run_end_closes_every_step_it_left_open(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    done = step("done", ended_at=T0 + 1)
    await store.save_step(lease, done, "1")
    await store.save_step(
        lease, step("nap", StepStatus.SLEEPING, kind="sleep", wake_at=T0 + 99), None
    )
    await store.save_step(lease, step("again", StepStatus.RETRYING, wake_at=T0 + 30), None)
    await store.finish(lease, status=RunStatus.CANCELLED, output_json=None, error=None, at=T0 + 5)
    run = await store.get_run(run_id)
    assert run is not None
    assert {s.id: (s.status, s.ended_at) for s in run.steps} == {
        "done": (StepStatus.COMPLETED, T0 + 1),
        "nap": (StepStatus.CANCELLED, T0 + 5),
        "again": (StepStatus.CANCELLED, T0 + 5),
    }


async def test_cancel_of_a_sleeping_run_closes_its_sleep(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    await store.save_step(
        lease, step("nap", StepStatus.SLEEPING, kind="sleep", wake_at=T0 + 99), None
    )
    await store.reschedule(lease, at=T0 + 99, now=T0, status=RunStatus.SLEEPING)
    # no worker holds it: it ends here, and the report says so (its intake announces it)
    assert await store.request_cancel(run_id, T0 + 2) == IntakeReport(
        cancelled=[run_id], ended=[run_id]
    )
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    [nap] = run.steps
    assert (nap.status, nap.ended_at, nap.wake_at) == (StepStatus.CANCELLED, T0 + 2, T0 + 99)


# -- operator actions -----------------------------------------------------------------------
async def test_cancel_of_a_queued_run_ends_it_at_once(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    assert await store.request_cancel(run_id, T0) == IntakeReport(
        cancelled=[run_id], ended=[run_id]
    )
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    assert await store.next_due() is None
    assert await store.request_cancel(run_id, T0) == IntakeReport()  # already ended


async def test_cancel_of_a_leased_run_is_handed_to_its_worker(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    # asked, not ended: its worker ends it (and announces it), so it is not in `ended`
    assert await store.request_cancel(run_id, T0 + 1) == IntakeReport(cancelled=[run_id])
    run = await store.get_run(run_id)
    assert run is not None and run.status is RunStatus.RUNNING
    assert await store.renew([lease], T0 + LEASE) == ([], [run_id])


async def test_a_cancel_rule_ends_an_idle_run_and_asks_a_held_one(store: Store) -> None:
    """The intake's report says which runs its cancel rules ended (no worker held them:
    the sender announces them) and which it asked a worker to stop."""
    items = []
    for _ in range(2):
        item = new_event("shop/ordered")
        [run] = item.runs
        rule = Wait(run.id, "cancel:0", "shop/stop", None, {}, T0 + 99, kind=WaitKind.CANCEL)
        items.append(replace(item, runs=[replace(run, waits=[rule])]))
    await store.ingest(items)
    idle, held = items[0].runs[0].id, items[1].runs[0].id
    for claim in await store.claim("w1", 2, T0, LEASE):  # both started; one goes to sleep
        if claim.run.id == idle:
            await store.reschedule(claim.lease, at=T0 + 50, now=T0, status=RunStatus.SLEEPING)
    report = await store.ingest([new_event("shop/stop", functions=(), at=T0 + 1)])
    assert sorted(report.cancelled) == sorted([idle, held]) and report.ended == [idle]
    ended, going = await store.get_run(idle), await store.get_run(held)
    assert ended is not None and ended.status is RunStatus.CANCELLED
    assert going is not None and going.status is RunStatus.RUNNING  # its worker ends it


async def test_a_run_asked_to_cancel_is_claimed_with_the_request(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    await claim_one(store, "w1")
    assert (await store.request_cancel(run_id, T0 + 1)).cancelled == [run_id]
    # the holder's lease is not cut short (its steps in flight must still be saved) ...
    assert await store.claim("w2", 1, T0 + 1, LEASE) == []
    # ... but should the holder be gone, whoever claims it when the lease ends gets the request
    claim = await claim_one(store, "w2", now=T0 + LEASE + 1)
    assert claim.run.id == run_id and claim.cancel_requested


# -- waits ----------------------------------------------------------------------------------
async def _waiting_run(store: Store, condition: str | None = None) -> tuple[str, StepRecord]:
    [run_id] = await queue_runs(store, 1)
    claim = await claim_one(store)
    waiting = step(
        "wait-for-payment",
        StepStatus.WAITING,
        kind="wait",
        wake_at=T0 + 3600,
        attempts=0,
    )
    wait = Wait(run_id, waiting.hashed_id, "shop/paid", condition, {"name": "x"}, T0 + 3600)
    await store.register_wait(claim.lease, waiting, wait)
    await store.reschedule(claim.lease, at=T0 + 3600, now=T0, status=RunStatus.WAITING)
    return run_id, waiting


async def test_a_matching_event_resumes_a_wait(store: Store) -> None:
    run_id, waiting = await _waiting_run(store)
    assert await store.next_due() == T0 + 3600
    assert (await store.get_run(run_id)).steps == [waiting]  # type: ignore[union-attr]
    paid = new_event("shop/paid", data={"order": 7}, functions=(), at=T0 + 5)
    await store.ingest([paid])
    run = await store.get_run(run_id)
    assert run is not None
    [resolved] = run.steps
    assert resolved.status is StepStatus.COMPLETED
    assert resolved.output["data"] == {"order": 7}
    assert await store.next_due() == T0 + 5  # the run is due now
    # the wait is used up: a second event finds nothing to resume
    await store.ingest([new_event("shop/paid", functions=(), at=T0 + 6)])
    run = await store.get_run(run_id)
    assert run is not None and run.steps[0].output["data"] == {"order": 7}


async def test_events_of_one_batch_resume_a_wait_once_in_their_order(store: Store) -> None:
    first_id, _ = await _waiting_run(store)
    second_id, _ = await _waiting_run(store, condition="async.data.order == 9")
    batch = [new_event("shop/paid", data={"order": n}, functions=(), at=T0 + n) for n in (7, 8, 9)]
    await store.ingest(batch)
    # the first event uses up the unconditional wait: the later ones no longer see it
    for run_id, order in ((first_id, 7), (second_id, 9)):
        run = await store.get_run(run_id)
        assert run is not None and run.steps[0].status is StepStatus.COMPLETED
        assert run.steps[0].output["data"] == {"order": order}


async def test_an_event_that_does_not_match_leaves_the_wait(store: Store) -> None:
    run_id, _ = await _waiting_run(store, condition="async.data.order == 8")
    await store.ingest([new_event("shop/paid", data={"order": 7}, functions=())])
    await store.ingest([new_event("shop/other", data={"order": 8}, functions=())])
    run = await store.get_run(run_id)
    assert run is not None and run.steps[0].status is StepStatus.WAITING
    assert await store.next_due() == T0 + 3600


# -- reads ----------------------------------------------------------------------------------
async def test_list_runs_filters_and_pages(store: Store) -> None:
    a_ids = await queue_runs(store, 3, fn="fn-a", at=T0)
    b_ids = await queue_runs(store, 4, fn="fn-b", at=T0 + 100)
    lease = (await claim_one(store, now=T0)).lease  # the oldest run of fn-a
    await store.finish(lease, status=RunStatus.COMPLETED, output_json=None, error=None, at=T0)

    everything = await store.list_runs(limit=100)
    assert [r.id for r in everything] == sorted(a_ids + b_ids, reverse=True)
    assert everything.next_cursor is None

    only_a = await store.list_runs(function_id="fn-a")
    assert sorted(r.id for r in only_a) == sorted(a_ids)
    completed = await store.list_runs(status=RunStatus.COMPLETED)
    assert [r.id for r in completed] == [lease.run_id]
    queued_b = await store.list_runs(function_id="fn-b", status=RunStatus.QUEUED)
    assert len(queued_b) == 4
    later = await store.list_runs(created_after=T0 + 50)
    assert sorted(r.id for r in later) == sorted(b_ids)
    earlier = await store.list_runs(created_before=T0 + 50)
    assert sorted(r.id for r in earlier) == sorted(a_ids)

    pages, cursor = [], None
    while True:
        page = await store.list_runs(limit=3, cursor=cursor)
        pages.append([r.id for r in page])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == [r.id for r in everything]


async def test_list_events_pages_newest_first(store: Store) -> None:
    items = [new_event(event_id=f"e{n}", at=T0 + n) for n in range(5)]
    await store.ingest(items)
    pages, cursor = [], None
    while True:
        page = await store.list_events(limit=2, cursor=cursor)
        pages.append([stored.event.id for stored in page])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [["e4", "e3"], ["e2", "e1"], ["e0"]]
    only = await store.list_events(name="test/event", limit=5)
    assert len(only) == 5 and only.next_cursor is None
    assert only[0].run_ids == [items[4].runs[0].id]


async def test_a_repeated_step_id_is_stored_with_its_occurrence(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    uses = [
        StepRecord(
            id="repeat",
            hashed_id=hash_step_id("repeat" if n == 0 else f"repeat:{n}"),
            status=StepStatus.COMPLETED,
            attempts=1,
            started_at=T0 + n,
            occurrence=n,
        )
        for n in range(3)
    ]
    # at once, so that a store may write them in one statement, as it does under load
    await asyncio.gather(*(store.save_step(lease, use, "null") for use in uses))
    run = await store.get_run(run_id)
    assert run is not None and run.steps == uses
    await store.reschedule(lease, at=T0, now=T0, status=RunStatus.SLEEPING)
    reclaimed = await claim_one(store)
    assert [(s.id, s.occurrence) for s in reclaimed.run.steps] == [("repeat", n) for n in range(3)]
    rerun = NewRun(new_id(), "fn", list(run.event_ids), T0, T0)
    await store.create_runs([rerun], [(rerun.id, uses[2])])
    copied = await store.get_run(rerun.id)
    assert copied is not None and copied.steps == [uses[2]]


async def test_list_runs_finds_runs_by_their_event_name_with_wildcards(store: Store) -> None:
    charge = new_event("billing/charge", functions=("a", "b"))
    refund = new_event("billing/refund")
    odd = new_event("shop/100%_[done]?")
    await store.ingest([charge, refund, odd, new_event("Billing/charge")])

    async def found(pattern: str) -> set[str]:
        return {r.id for r in await store.list_runs(event_name=pattern)}

    assert await found("billing/charge") == {r.id for r in charge.runs}
    assert await found("billing/*") == {r.id for r in charge.runs + refund.runs}
    assert await found("*/re*d") == {refund.runs[0].id}
    assert await found("billing/charg") == set()  # no wildcard: the whole name
    assert await found("shop/100%_[done]?") == {odd.runs[0].id}  # only * is special
    assert await found("shop/1_0*") == set()
    both = await store.list_runs(event_name="billing/*", function_id="b")
    assert [r.id for r in both] == [charge.runs[1].id]


async def test_list_runs_filters_by_the_trigger_event_in_bounded_pages(store: Store) -> None:
    items = [new_event("acct/x", data={"n": n}) for n in range(12)]
    await store.ingest(items)
    even = [i.runs[0].id for i in items if i.event.data["n"] % 2 == 0]

    def is_even(event: Event) -> bool:
        return event.data["n"] % 2 == 0

    page = await store.list_runs(event_filter=is_even, limit=4)
    assert [r.id for r in page] == sorted(even, reverse=True)[:4]
    rest = await store.list_runs(event_filter=is_even, limit=4, cursor=page.next_cursor)
    assert [r.id for r in rest] == sorted(even, reverse=True)[4:]
    assert rest.next_cursor is None
    none = await store.list_runs(event_filter=lambda e: False)
    assert (none.items, none.next_cursor) == ([], None)


async def test_a_filtered_scan_stops_after_scan_max_runs_with_a_cursor(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_search, "SCAN_PAGE", 3)
    monkeypatch.setattr(run_search, "SCAN_MAX", 6)
    items = [new_event("acct/y", data={"n": n}) for n in range(10)]
    await store.ingest(items)
    newest_first = [i.runs[0].id for i in reversed(items)]
    page = await store.list_runs(event_filter=lambda e: e.data["n"] == 0)
    assert (page.items, page.next_cursor) == ([], newest_first[5])  # six read, none matched
    page = await store.list_runs(event_filter=lambda e: e.data["n"] == 0, cursor=newest_first[5])
    assert [r.id for r in page] == [newest_first[-1]]


async def test_run_events_and_reruns_of(store: Store) -> None:
    first = new_event("test/a", data={"k": 1})
    await store.ingest([first, new_event("test/b")])
    old = first.runs[0]
    [stored] = await store.run_events([old.id])
    assert (stored.event.name, stored.event.data) == ("test/a", {"k": 1})
    assert await store.run_events([]) == []
    reruns = [NewRun(new_id(), "fn", old.event_ids, T0 + n, T0 + n) for n in (1, 2)]
    other = NewRun(new_id(), "fn", old.event_ids, T0 + 3, T0 + 3)  # same event, not a rerun
    await store.create_runs([*reruns, other])
    for run in reruns:
        await store.add_history(run.id, HistoryEntry(run.created_at, "rerun", {"of": old.id}))
    assert await store.reruns_of(old.id) == [r.id for r in reruns]
    assert await store.reruns_of(reruns[0].id) == []


async def test_get_run_returns_steps_and_history(store: Store) -> None:
    [run_id] = await queue_runs(store, 1)
    lease = (await claim_one(store)).lease
    saved = step("a", output={"x": [1, "two", None]}, ended_at=T0 + 0.5)
    await store.save_step(lease, saved, json.dumps(saved.output))
    run = await store.get_run(run_id, with_history=True)
    assert run is not None
    assert run.steps == [saved]
    assert [h.kind for h in run.history] == ["queued", "started"]
    assert await store.get_run("no-such-run") is None


# -- apps synced by the official SDKs ---------------------------------------------------
def _synced(error: str | None = None, at: float = T0) -> SyncedAppRecord:
    return SyncedAppRecord(
        "shop", "http://a:3000/api/inngest", "js:v4.24.0", "express", None, at, error
    )


async def test_a_synced_app_publishes_its_functions_and_a_resync_replaces_them(
    store: Store,
) -> None:
    one = {"id": "shop-one", "triggers": [{"event": "a"}], "runtime": {"type": "http", "url": "u"}}
    two = {"id": "shop-two", "triggers": [{"event": "b"}]}
    await store.register_functions("other", [{"id": "other-fn", "triggers": []}], T0)
    await store.save_app(_synced(), [one, two])
    assert await store.list_apps() == [_synced()]
    ids = {c["id"] for c in await store.registered_functions()}
    assert ids == {"shop-one", "shop-two", "other-fn"}
    await store.save_app(_synced(at=T0 + 5), [one])
    ids = {c["id"] for c in await store.registered_functions()}
    assert ids == {"shop-one", "other-fn"}
    assert [a.synced_at for a in await store.list_apps()] == [T0 + 5]


async def test_a_python_app_and_an_sdk_app_cannot_share_an_id(store: Store) -> None:
    native = {"id": "native-fn", "triggers": [{"event": "a"}]}
    synced = {"id": "shop-one", "triggers": [{"event": "b"}], "runtime": {"type": "http"}}
    await store.register_functions("shop", [native], T0)
    with pytest.raises(AppIdTakenError, match=r"stepstone\.App\('shop'\)"):
        await store.save_app(_synced(), [synced])
    with pytest.raises(AppIdTakenError):  # nor as a failed sync
        await store.save_app(_synced("bad payload"), None)
    assert await store.list_apps() == []
    assert [c["id"] for c in await store.registered_functions()] == ["native-fn"]
    # the other way round: a Python app named as a synced SDK app
    await store.save_app(replace(_synced(), id="web"), [synced])
    with pytest.raises(AppIdTakenError, match=r"SDK app synced .* from http://a:3000"):
        await store.register_functions("web", [native], T0)
    await store.register_functions("web", [], T0)  # no functions of its own: nothing done
    ids = {c["id"] for c in await store.registered_functions()}
    assert ids == {"native-fn", "shop-one"}


async def test_a_failed_sync_keeps_the_apps_functions(store: Store) -> None:
    await store.save_app(replace(_synced("no functions"), id="new"), None)
    assert [(a.id, a.error) for a in await store.list_apps()] == [("new", "no functions")]
    config = {"id": "shop-one", "triggers": [{"event": "a"}]}
    await store.save_app(_synced(), [config])
    await store.save_app(_synced("bad payload", at=T0 + 9), None)
    [_, app] = await store.list_apps()
    assert (app.error, app.synced_at, app.url) == ("bad payload", T0 + 9, _synced().url)
    assert [c["id"] for c in await store.registered_functions()] == ["shop-one"]
    await store.save_app(_synced(at=T0 + 10), [config])
    assert [a.error for a in await store.list_apps()] == ["no functions", None]
