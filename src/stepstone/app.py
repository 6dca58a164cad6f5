"""App: the front door users hold: define functions, send events, read runs, run workers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from .clock import Clock
from .durations import Duration
from .errors import ConfigError, RunNotFoundError
from .expressions import Expression
from .flow import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle
from .function import EventTrigger, FunctionDef, TriggerSpec, build_function
from .limits import Limits
from .options import Cancel, Timeouts
from .planning import FAILED, RawEvents
from .records import Event, HistoryEntry, Page, Run, RunStatus, StepRecord, StepStatus
from .retention import retention_seconds
from .retry import Backoff
from .runtime import Runtime
from .store import Pruned, Store, StoredEvent, SyncedAppRecord

T = TypeVar("T")

DEFAULT_DATABASE = "sqlite:///.stepstone/stepstone.db"


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
        retention: Duration | None = None,
    ) -> None:
        if not isinstance(id, str) or not id:
            raise ConfigError("App id must be a non-empty string")
        self.id = id
        url = database or os.environ.get("STEPSTONE_DATABASE_URL") or DEFAULT_DATABASE
        self.runtime = Runtime(
            id,
            url,
            backoff=backoff,
            limits=limits,
            clock=clock,
            retry_after_min=retry_after_min,
            retention=retention_seconds(retention),
        )
        self._portal: _Portal | None = None

    # the settings users read, held by the runtime the engine runs on
    @property
    def database_url(self) -> str:
        return self.runtime.database_url

    @database_url.setter
    def database_url(self, url: str) -> None:
        self.runtime.database_url = url

    @property
    def functions(self) -> dict[str, FunctionDef]:
        """This app's functions by id."""
        return self.runtime.registry.local

    @functions.setter
    def functions(self, functions: dict[str, FunctionDef]) -> None:
        self.runtime.registry.local = functions

    @property
    def clock(self) -> Clock:
        return self.runtime.clock

    @property
    def limits(self) -> Limits:
        return self.runtime.limits

    @property
    def backoff(self) -> Backoff:
        return self.runtime.backoff

    @property
    def retry_after_min(self) -> float:
        return self.runtime.retry_after_min

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
                # a JSON string is a CEL string literal, but for \u escapes of characters
                # past U+FFFF (surrogate pairs), which CEL refuses: keep those as written
                literal = json.dumps(id, ensure_ascii=False)
                self.runtime.registry.add(
                    build_function(
                        on_failure,
                        id=failure_id,
                        trigger=EventTrigger(FAILED, f"event.data.function_id == {literal}"),
                        retries=retries,
                        name=f"{fn.name} (on failure)",
                        backoff=backoff,
                    )
                )
            self.runtime.registry.add(fn)
            return fn

        return register

    # -- the store -----------------------------------------------------------------------
    async def store(self) -> Store:
        """The opened store (opened on first use, created and migrated if needed)."""
        return await self.runtime.store()

    async def close(self) -> None:
        await self.runtime.close()
        if self._portal is not None:
            self._portal.stop()
            self._portal = None

    # -- sending -----------------------------------------------------------------------
    async def send(self, events: RawEvents) -> list[str]:
        """Store events and create the runs they trigger, in one transaction; return their ids.

        An event whose id was already stored is accepted and ignored.
        """
        return await self.runtime.intake.send(events)

    async def publish_functions(self) -> None:
        """Publish this app's functions so other processes' events start their runs."""
        runtime = self.runtime
        await runtime.registry.publish(await runtime.store(), runtime.clock.now())

    # -- reading -----------------------------------------------------------------------
    async def known_functions(self) -> list[FunctionDef]:
        """This app's functions, then those other processes and synced SDK apps published."""
        registry = self.runtime.registry
        await registry.refresh(await self.store())
        return registry.all()

    async def synced_apps(self) -> list[SyncedAppRecord]:
        """The apps written with an official SDK that synced to this app's database."""
        return await (await self.store()).list_apps()

    async def record_sync_failure(self, app: SyncedAppRecord, error: str) -> None:
        """A sync of `app` that failed: it shows with its error; its functions stay."""
        failed = dataclasses.replace(app, error=error, synced_at=self.clock.now())
        await (await self.store()).save_app(failed, None)

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
        event: str | None = None,
        if_: str | None = None,
    ) -> Page[Run]:
        """Runs, newest first (without their steps): iterate over the page; pass its
        `next_cursor` as `cursor` for the next one.

        `event`: runs of events with this name (`*` matches any characters); `if_`: a CEL
        expression over the trigger event (`event.data.account == "acme"`). A search with
        `if_` reads at most 5,000 runs per call: it may answer fewer runs than `limit`
        and a `next_cursor` to go on from.
        """
        _check_limit(limit)
        event_filter = None if if_ is None else _trigger_filter(if_)
        return await (await self.store()).list_runs(
            function_id=function_id,
            status=None if status is None else RunStatus(status),
            limit=limit,
            cursor=cursor,
            created_after=created_after,
            created_before=created_before,
            event_name=event,
            event_filter=event_filter,
        )

    async def run_events(self, run_ids: Sequence[str]) -> list[StoredEvent]:
        """The events of these runs (their triggers), in no order."""
        return await (await self.store()).run_events(run_ids)

    async def reruns_of(self, run_id: str) -> list[str]:
        """The ids of the runs `rerun` started from this run, oldest first."""
        return await (await self.store()).reruns_of(run_id)

    async def runs_for_event(self, event_id: str) -> list[Run]:
        return await (await self.store()).runs_for_event(event_id)

    async def get_event(self, event_id: str) -> StoredEvent | None:
        return await (await self.store()).get_event(event_id)

    async def list_events(
        self, *, name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page[StoredEvent]:
        """Events, newest first, as `list_runs` pages runs."""
        _check_limit(limit)
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
        report = await store.request_cancel(run_id, self.clock.now())
        if report.cancelled:  # stopped here if this process runs it; announced if it ended
            await self.runtime.intake.settle(store, report)
        self.runtime.signals.wake_workers()
        return bool(report.cancelled)

    async def rerun(self, run_id: str, *, from_step: str | None = None) -> str:
        """Start a new run of the same function with the same event(s); return its id.

        The new run is planned as its function's runs are (cancel rules, flow control);
        with `from_step`, the steps completed before that one are kept, not run again.
        """
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
        await self.runtime.registry.refresh(store)
        stored = await store.get_event(run.event_ids[0]) if run.event_ids else None
        now = self.clock.now()
        new = self.runtime.planner.rerun(run, None if stored is None else stored.event, now)
        report = await store.create_runs([new], [(new.id, step) for step in kept])
        await store.add_history(new.id, HistoryEntry(now, "rerun", {"of": run_id}))
        await self.runtime.intake.settle(store, report)
        return new.id

    async def invoke(self, function: Any, data: dict[str, Any] | None = None) -> str:
        """Start a run of this one function (whatever else listens to its events) with an
        event `stepstone/function.invoked` carrying `data`; return the run's id."""
        runtime = self.runtime
        await runtime.registry.refresh(await self.store())
        fn = runtime.registry.get(runtime.registry.resolve(function))
        planned = runtime.planner.direct_invoke(fn, data or {})
        await runtime.intake.store([planned])
        return planned.runs[0].id

    async def pending_migrations(self) -> list[int]:
        """The migrations this version knows and the database lacks (empty: its schema is
        current); raises when the database does not answer."""
        return await (await self.store()).pending_migrations()

    async def prune(self, older_than: Duration | None = None) -> Pruned:
        """Delete now the finished runs (and the events no run needs) older than
        `older_than` (default: the app's retention); what was deleted."""
        keep = retention_seconds(older_than) if older_than is not None else self.retention
        if keep <= 0:
            raise ConfigError("retention is 0 (keep everything): give older_than to prune")
        from .engine.pruning import prune

        return await prune(await self.store(), self.clock.now() - keep)

    @property
    def retention(self) -> float:
        """Seconds finished runs are kept (0: forever)."""
        return self.runtime.retention

    @retention.setter
    def retention(self, value: Duration | None) -> None:
        self.runtime.retention = retention_seconds(value)

    async def backlog(self) -> tuple[int, float]:
        """How many runs wait for a worker now, and for how many seconds the oldest has."""
        due, oldest = await (await self.store()).backlog(self.clock.now())
        return due, 0.0 if oldest is None else max(0.0, self.clock.now() - oldest)

    # -- workers -----------------------------------------------------------------------
    def worker(self, **options: Any) -> Any:
        """An in-process worker; `async with app.worker(): ...` runs it for the block."""
        from .engine.worker import Worker

        return Worker(self.runtime, **options)

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

    def list_runs_sync(self, **filters: Any) -> Page[Run]:
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


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise ConfigError("limit must be from 1 to 1000")


def _trigger_filter(source: str) -> Callable[[Event], bool]:
    """A CEL expression over `event` (a run's trigger) as a predicate; raises ConfigError
    when it does not compile."""
    expression = Expression(source, where="the runs' filter `if`")
    return lambda event: expression.matches({"event": event.to_dict()})
