"""App: the function registry, event intake, queries and workers."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from .clock import Clock
from .engine import runlog
from .errors import ConfigError, RunNotFoundError
from .events import validate_all
from .expressions import Expression
from .flow import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle
from .function import EventTrigger, FunctionDef, TriggerSpec, build_function, function_from_config
from .ids import new_id
from .limits import Limits
from .options import Cancel, Timeouts
from .records import Event, HistoryEntry, Run, RunStatus, StepRecord, StepStatus
from .retry import Backoff, default_backoff
from .serde import dumps, size_of
from .store import (
    Claim,
    Handoff,
    NewEvent,
    NewRun,
    RunPage,
    Store,
    StoredEvent,
    Wait,
    store_from_url,
)
from .store.base import NO_FLOW

T = TypeVar("T")
log = logging.getLogger("stepstone.app")


class Taker(Protocol):
    """What a send needs of a worker to hand it new runs (engine.worker.Worker)."""

    def handoff(self) -> Handoff | None: ...

    def accept(self, claims: list[Claim]) -> None: ...


DEFAULT_DATABASE = "sqlite:///.stepstone/stepstone.db"
FINISHED = "stepstone/function.finished"
FAILED = "stepstone/function.failed"
CANCELLED = "stepstone/function.cancelled"
INVOKED = "stepstone/function.invoked"
MAX_WAIT = 366 * 86400.0


class App:
    """A set of functions and the database their runs live in."""

    def __init__(
        self,
        id: str,
        *,
        database: str | None = None,
        backoff: Backoff | None = None,
        limits: Limits | None = None,
        clock: Clock | None = None,
        retry_after_min: float = 1.0,
    ) -> None:
        if not isinstance(id, str) or not id:
            raise ConfigError("App id must be a non-empty string")
        self.id = id
        self.database_url = database or os.environ.get("STEPSTONE_DATABASE_URL") or DEFAULT_DATABASE
        self.backoff: Backoff = backoff or default_backoff
        self.limits = limits or Limits()
        self.clock = clock or Clock()
        self.retry_after_min = retry_after_min
        self.functions: dict[str, FunctionDef] = {}
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._wakers: set[Callable[[], None]] = set()
        self._takers: list[Taker] = []
        self._cancel_listeners: set[Callable[[str], None]] = set()
        self._portal: _Portal | None = None
        self._expressions: dict[str, Expression] = {}
        # functions other processes published, so events sent from here start their runs too
        self._remote: dict[str, tuple[str, FunctionDef]] = {}
        self._remote_loaded_at = -1e9
        self.registry_ttl = 2.0
        subscribe = getattr(self.clock, "subscribe", None)
        if callable(subscribe):
            subscribe(self.wake_workers)  # a test clock that moves wakes the workers

    # -- definitions --------------------------------------------------------------------
    def function(
        self,
        *,
        id: str,
        trigger: TriggerSpec | Sequence[TriggerSpec] | None = None,
        retries: int = 4,
        name: str | None = None,
        backoff: Backoff | None = None,
        cancel_on: Cancel | Mapping[str, Any] | Sequence[Cancel | Mapping[str, Any]] | None = None,
        timeouts: Timeouts | Mapping[str, Any] | None = None,
        on_failure: Callable[..., Any] | None = None,
        concurrency: int | Concurrency | Mapping[str, Any] | Sequence[Any] | None = None,
        throttle: Throttle | Mapping[str, Any] | None = None,
        rate_limit: RateLimit | Mapping[str, Any] | None = None,
        debounce: Debounce | Mapping[str, Any] | None = None,
        batch_events: Batch | Mapping[str, Any] | None = None,
        priority: Priority | Mapping[str, Any] | None = None,
        idempotency: str | None = None,
        singleton: Singleton | Mapping[str, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], FunctionDef]:
        """Register the decorated function; sync `def` and `async def` are both accepted.

        `on_failure` is a function run (as `<id>-failure`) when a run of this one fails;
        its `ctx.event` is the `stepstone/function.failed` event.
        """

        def register(handler: Callable[..., Any]) -> FunctionDef:
            failure_id = f"{id}-failure"
            for taken in (id, failure_id) if on_failure else (id,):
                if taken in self.functions:
                    raise ConfigError(
                        f"function id {taken!r} is already registered in app {self.id!r}"
                    )
            fn = build_function(
                handler,
                id=id,
                trigger=trigger,
                retries=retries,
                name=name,
                backoff=backoff,
                cancel_on=cancel_on,
                timeouts=timeouts,
                concurrency=concurrency,
                throttle=throttle,
                rate_limit=rate_limit,
                debounce=debounce,
                batch_events=batch_events,
                priority=priority,
                idempotency=idempotency,
                singleton=singleton,
            )
            if on_failure is not None:
                if not callable(on_failure):
                    raise ConfigError(f"function {id!r}: on_failure must be a function")
                self.functions[failure_id] = build_function(
                    on_failure,
                    id=failure_id,
                    trigger=EventTrigger(FAILED, f"event.data.function_id == {json.dumps(id)}"),
                    retries=retries,
                    name=f"{fn.name} (on failure)",
                    backoff=backoff,
                )
            self.functions[id] = fn
            return fn

        return register

    def new_run(
        self,
        fn: FunctionDef,
        event: Event,
        now: float,
        *,
        available_at: float | None = None,
        parent_run_id: str | None = None,
        parent_step: str | None = None,
    ) -> NewRun:
        """A run of `fn` for `event`, with the cancel rules it listens for."""
        run_id = new_id()
        trigger = event.to_dict()
        waits = [
            Wait(
                run_id,
                f"cancel:{index}",
                rule.event,
                rule.condition.source if rule.condition else None,
                trigger,
                now + (rule.timeout if rule.timeout is not None else MAX_WAIT),
            )
            for index, rule in enumerate(fn.cancel_on)
        ]
        flow = NO_FLOW if fn.flow is None else fn.flow.plan(trigger)
        return NewRun(
            run_id,
            fn.id,
            [event.id or ""],
            now,
            now if available_at is None else available_at,
            parent_run_id=parent_run_id,
            parent_step=parent_step,
            waits=waits,
            flow=flow,
        )

    def function_def(self, function_id: str) -> FunctionDef:
        """A function of this process, or one another process published."""
        fn = self.functions.get(function_id)
        if fn is None and function_id in self._remote:
            fn = self._remote[function_id][1]
        if fn is None:
            raise ConfigError(f"no function {function_id!r} is registered in app {self.id!r}")
        return fn

    def function_id(self, function: Any) -> str:
        """The id of a function given as its id or the object @app.function returned."""
        function_id = function.id if isinstance(function, FunctionDef) else function
        known = function_id in self.functions or function_id in self._remote
        if not isinstance(function_id, str) or not known:
            raise ConfigError(f"no function {function_id!r} is registered in app {self.id!r}")
        return function_id

    # -- the store -----------------------------------------------------------------------
    async def store(self) -> Store:
        """The opened store (opened on first use, created and migrated if needed)."""
        with self._store_lock:
            if self._store is None:
                self._store = store_from_url(self.database_url)
            store = self._store
        await store.open()
        return store

    async def close(self) -> None:
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            await store.close()
        if self._portal is not None:
            self._portal.stop()
            self._portal = None

    def add_waker(self, wake: Callable[[], None]) -> None:
        self._wakers.add(wake)

    def remove_waker(self, wake: Callable[[], None]) -> None:
        self._wakers.discard(wake)

    def add_cancel_listener(self, listener: Callable[[str], None]) -> None:
        self._cancel_listeners.add(listener)

    def remove_cancel_listener(self, listener: Callable[[str], None]) -> None:
        self._cancel_listeners.discard(listener)

    def wake_workers(self) -> None:
        for wake in list(self._wakers):
            wake()

    def add_taker(self, taker: Taker) -> None:
        """A worker of this process that may take the runs a send creates (Handoff)."""
        self._takers.append(taker)

    def remove_taker(self, taker: Taker) -> None:
        if taker in self._takers:
            self._takers.remove(taker)

    def _handoff(self) -> tuple[Taker, Handoff] | None:
        for taker in self._takers:
            handoff = taker.handoff()
            if handoff is not None:
                return taker, handoff
        return None

    # -- sending -----------------------------------------------------------------------
    async def send(
        self, events: Event | Mapping[str, Any] | Sequence[Event | Mapping[str, Any]]
    ) -> list[str]:
        """Store events and create the runs they trigger, in one transaction; return their ids.

        An event whose id was already stored is accepted and ignored.
        """
        store = await self.store()
        await self.refresh_registry(store)
        prepared = self.prepare_events(events)
        cancelled: list[str] = []

        def match(wait: Wait, event: Event) -> bool:
            matched = self.match_wait(wait, event)
            if matched and wait.hashed_id.startswith("cancel:"):
                cancelled.append(wait.run_id)
            return matched

        # an idle worker of this process takes the new runs in the same transaction: no
        # claim between the event and the first step
        taking = self._handoff()
        await store.ingest(prepared, match, handoff=None if taking is None else taking[1])
        if taking is not None and taking[1].claims:
            taking[0].accept(taking[1].claims)
        if cancelled:
            await self._announce_cancelled(store, cancelled)
        self.wake_workers()
        return [item.event.id for item in prepared if item.event.id is not None]

    def prepare_events(
        self,
        events: Event | Mapping[str, Any] | Sequence[Event | Mapping[str, Any]],
        *,
        internal: bool = False,
        exclude_function: str | None = None,
    ) -> list[NewEvent]:
        """Validate events and plan the runs they trigger (nothing is stored)."""
        now = self.clock.now()
        out = []
        for event, data_json in validate_all(events, self.limits, internal=internal):
            as_dict = event.to_dict()
            runs = [
                self.new_run(fn, event, now)
                for fn in self.all_functions()
                if fn.id != exclude_function and fn.matches(event.name, as_dict)
            ]
            out.append(NewEvent(event, data_json, now, runs))
        return out

    def all_functions(self) -> list[FunctionDef]:
        """This process's functions, then those other processes published."""
        local = list(self.functions.values())
        return local + [fn for fid, (_, fn) in self._remote.items() if fid not in self.functions]

    async def refresh_registry(self, store: Store, *, force: bool = False) -> None:
        """Reload the functions other processes published, at most every `registry_ttl` s."""
        now = time.monotonic()
        if not force and now - self._remote_loaded_at < self.registry_ttl:
            return
        remote: dict[str, tuple[str, FunctionDef]] = {}
        for config in await store.registered_functions():
            key = json.dumps(config, sort_keys=True)
            known = self._remote.get(config["id"])
            if known is not None and known[0] == key:
                remote[config["id"]] = known
                continue
            try:
                remote[config["id"]] = (key, function_from_config(config))
            except (ConfigError, KeyError, TypeError) as exc:
                log.warning("ignoring published function %r: %s", config.get("id"), exc)
        self._remote = remote
        self._remote_loaded_at = now

    async def publish_functions(self) -> None:
        """Publish this app's functions so other processes' events start their runs."""
        store = await self.store()
        configs = [fn.describe() for fn in self.functions.values()]
        await store.register_functions(self.id, configs, self.clock.now())
        await self.refresh_registry(store, force=True)

    def match_wait(self, wait: Wait, event: Event) -> bool:
        if wait.condition is None:
            return True
        expression = self._expressions.get(wait.condition)
        if expression is None:
            expression = Expression(wait.condition, where="wait_for_event if_")
            self._expressions[wait.condition] = expression
        return expression.matches({"event": wait.trigger_event, "async": event.to_dict()})

    # -- reading -----------------------------------------------------------------------
    async def get_run(self, run_id: str, *, history: bool = True) -> Run | None:
        return await (await self.store()).get_run(run_id, with_history=history)

    async def list_runs(
        self,
        *,
        function_id: str | None = None,
        status: RunStatus | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> RunPage:
        """Runs, newest first; pass the page's `next_cursor` to get the next page."""
        if not 1 <= limit <= 1000:
            raise ConfigError("limit must be from 1 to 1000")
        return await (await self.store()).list_runs(
            function_id=function_id,
            status=None if status is None else RunStatus(status),
            limit=limit,
            cursor=cursor,
            created_after=created_after,
            created_before=created_before,
        )

    async def runs_for_event(self, event_id: str) -> list[Run]:
        return await (await self.store()).runs_for_event(event_id)

    async def get_event(self, event_id: str) -> StoredEvent | None:
        return await (await self.store()).get_event(event_id)

    async def list_events(
        self, *, name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> list[StoredEvent]:
        return await (await self.store()).list_events(name=name, limit=limit, cursor=cursor)

    async def wait_for_run(self, run_id: str, *, timeout: float = 30.0, poll: float = 0.01) -> Run:
        """Wait until the run has ended and return it (TimeoutError after `timeout` seconds)."""
        store = await self.store()
        deadline = asyncio.get_running_loop().time() + timeout
        delay = poll
        while True:
            run = await store.get_run(run_id, with_history=True)
            if run is None:
                raise RunNotFoundError(f"no run has id {run_id!r}")
            if run.status.is_final:
                return run
            if asyncio.get_running_loop().time() >= deadline:
                raise TimeoutError(_still_going(run, timeout))
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    # -- operator actions ---------------------------------------------------------------
    async def cancel(self, run_id: str) -> bool:
        """Cancel a run: steps running now finish and are saved; no new step starts.

        Returns False when the run had already ended.
        """
        store = await self.store()
        run = await store.get_run(run_id)
        if run is None:
            raise RunNotFoundError(f"no run has id {run_id!r}")
        if run.status.is_final:
            return False
        changed = await store.request_cancel(run_id, self.clock.now())
        if changed:
            await self._announce_cancelled(store, [run_id])
        self.wake_workers()
        return changed

    async def _announce_cancelled(self, store: Store, run_ids: list[str]) -> None:
        """Stop local invocations of these runs; announce those that ended already."""
        for run_id in run_ids:
            for listener in list(self._cancel_listeners):
                listener(run_id)
            run = await store.get_run(run_id)
            if run is not None and run.status is RunStatus.CANCELLED:
                runlog.cancelled_idle(run)
                stored = await store.get_event(run.event_ids[0]) if run.event_ids else None
                first = stored.event if stored else None
                await store.ingest(self.lifecycle_events(run, RunStatus.CANCELLED, event=first))

    async def rerun(self, run_id: str, *, from_step: str | None = None) -> str:
        """Start a new run of the same function with the same event(s); return its id."""
        store = await self.store()
        run = await store.get_run(run_id)
        if run is None:
            raise RunNotFoundError(f"no run has id {run_id!r}")
        kept: list[StepRecord] = []
        if from_step is not None:
            ordered = sorted(run.steps, key=lambda s: (s.started_at or 0.0, s.ended_at or 0.0))
            ids = [s.id for s in ordered]
            if from_step not in ids:
                raise ConfigError(
                    f"run {run_id} has no step {from_step!r}; its steps are {', '.join(ids)}"
                )
            kept = [s for s in ordered[: ids.index(from_step)] if s.status is StepStatus.COMPLETED]
        now = self.clock.now()
        new = NewRun(new_id(), run.function_id, list(run.event_ids), now, now)
        await store.create_runs([new], [(new.id, step) for step in kept])
        await store.add_history(new.id, HistoryEntry(now, "rerun", {"of": run_id}))
        self.wake_workers()
        return new.id

    def lifecycle_events(
        self,
        run: Run,
        status: RunStatus,
        error: dict[str, Any] | None = None,
        output: Any = None,
        event: Event | None = None,
    ) -> list[NewEvent]:
        """The internal events that announce a run's end, with the runs they trigger.

        Their ids derive from the run, so announcing the same end twice stores it once.
        Built here rather than validated like a user's: every part is already plain JSON.
        """
        data = {
            "function_id": run.function_id,
            "run_id": run.id,
            "event_ids": run.event_ids,
            "event": None if event is None else event.to_dict(),
        }
        named: list[tuple[str, str, dict[str, Any]]] = []
        if status is RunStatus.FAILED:
            named.append((FAILED, f"{run.id}:failed", {**data, "error": error}))
        elif status is RunStatus.CANCELLED:
            named.append((CANCELLED, f"{run.id}:cancelled", data))
        finished = {**data, "status": status.value, "output": output, "error": error}
        named.append((FINISHED, f"{run.id}:finished", finished))
        now, ts = self.clock.now(), int(time.time() * 1000)
        out = []
        for name, event_id, payload in named:
            payload, data_json = _within_event_size(payload, name, self.limits.max_event_size)
            announced = Event(name=name, data=payload, id=event_id, ts=ts)
            as_dict = announced.to_dict()
            runs = [
                self.new_run(fn, announced, now)
                for fn in self.all_functions()
                if fn.id != run.function_id and fn.matches(name, as_dict)
            ]
            out.append(NewEvent(announced, data_json, now, runs))
        return out

    # -- workers -----------------------------------------------------------------------
    def worker(self, **options: Any) -> Any:
        """An in-process worker; `async with app.worker(): ...` runs it for the block."""
        from .engine.worker import Worker

        return Worker(self, **options)

    # -- the sync API, derived from the async one --------------------------------------------
    def _call_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError(
                "this is the blocking API; inside async code, await the async method instead"
            )
        if self._portal is None:
            self._portal = _Portal()
        return self._portal.call(coro)

    def send_sync(
        self, events: Event | Mapping[str, Any] | Sequence[Event | Mapping[str, Any]]
    ) -> list[str]:
        return self._call_sync(self.send(events))

    def get_run_sync(self, run_id: str) -> Run | None:
        return self._call_sync(self.get_run(run_id))

    def wait_for_run_sync(self, run_id: str, *, timeout: float = 30.0) -> Run:
        return self._call_sync(self.wait_for_run(run_id, timeout=timeout))

    def list_runs_sync(self, **filters: Any) -> RunPage:
        return self._call_sync(self.list_runs(**filters))

    def cancel_sync(self, run_id: str) -> bool:
        return self._call_sync(self.cancel(run_id))

    def rerun_sync(self, run_id: str, *, from_step: str | None = None) -> str:
        return self._call_sync(self.rerun(run_id, from_step=from_step))

    def close_sync(self) -> None:
        portal, self._portal = self._portal, None
        if portal is not None:
            portal.call(self.close())
            portal.stop()


class _Portal:
    """An event loop on a daemon thread that runs the sync API's coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()  # else its self-pipe and selector leak until collected


def _still_going(run: Run, timeout: float) -> str:
    """Why wait_for_run gave up: the run's status, and the error it is retrying after."""
    message = f"run {run.id} ({run.function_id}) is still {run.status.value} after {timeout}s"
    error = run.last_error()
    if error is None:
        return message
    text = f"{error.get('name') or 'Error'}: {error.get('message') or ''}".rstrip(": ")
    retrying = any(step.status is StepStatus.RETRYING for step in run.steps) or (
        bool(run.history) and run.history[-1].kind == "retrying"
    )
    if retrying:
        return f"{message}: it is retrying after {text}"
    return f"{message}; its last error: {text}"


def _within_event_size(data: dict[str, Any], name: str, limit: int) -> tuple[dict[str, Any], str]:
    """A lifecycle event's data and its JSON, within the event size limit: a run's output
    or error too large to announce is left out, with a note (the run keeps it whole)."""
    data_json = dumps(data)
    if size_of(data_json) + size_of(name) <= limit:
        return data, data_json
    data = dict(data)
    for field in ("output", "error", "event"):
        if data.get(field) is not None:
            size = size_of(dumps(data[field]))
            data[field] = None
            data[f"{field}_omitted"] = (
                f"{size} bytes, over the event size limit; read it from the run"
            )
            data_json = dumps(data)
            if size_of(data_json) + size_of(name) <= limit:
                break
    return data, data_json
