"""How a worker calls the function of a claimed run: in this process (an `Invocation`,
with thread pools for sync functions and sync steps), or over HTTP for a function an SDK
app synced (a `RemoteInvocation`, on one connection pool the worker opens on first use)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ..errors import ConfigError
from ..events import validate_all
from ..executor import Invocation, InvocationInput
from ..function import FunctionDef
from ..records import Event
from ..runtime import Runtime
from ..store import Claim
from .persist import RunWriter
from .remote import RemoteInvocation


class Invocations:
    """Makes the invocations of a worker's runs, and owns what they run on."""

    def __init__(self, runtime: Runtime, *, sync_threads: int, concurrency: int) -> None:
        self.runtime = runtime
        self.clock = runtime.clock
        self._step_pool = ThreadPoolExecutor(sync_threads, thread_name_prefix="stepstone-step")
        self._fn_pool = ThreadPoolExecutor(concurrency, thread_name_prefix="stepstone-fn")
        self._http: httpx.AsyncClient | None = None

    def function_of(self, function_id: str) -> FunctionDef | None:
        """The function a run belongs to: one of this process's, or one an SDK app synced
        (it runs over HTTP from any worker); None when neither knows it."""
        registry = self.runtime.registry
        fn = registry.local.get(function_id)
        if fn is None:
            with contextlib.suppress(ConfigError):
                published = registry.get(function_id)
                fn = published if published.runtime is not None else None
        return fn

    def for_run(
        self,
        claim: Claim,
        fn: FunctionDef,
        writer: RunWriter,
        *,
        lease_held: Callable[[], bool],
        renew_lease: Callable[[], Awaitable[bool]],
    ) -> Invocation | RemoteInvocation:
        """The call of `fn` for a claimed run; its checkpoints go through `writer`."""
        runtime, run = self.runtime, claim.run
        data = InvocationInput(
            function=fn,
            run_id=run.id,
            attempt=run.attempt,
            events=claim.events or [Event(name="stepstone/missing.event")],
            steps=run.steps,
        )
        if fn.runtime is not None:
            return RemoteInvocation(
                data,
                emit=writer.checkpoint,
                clock=self.clock,
                backoff=fn.backoff or runtime.backoff,
                client=self._http_client(),
                signing_key=runtime.signing_key,
                limits=runtime.limits,
                retry_after_min=runtime.retry_after_min,
            )
        return Invocation(
            data,
            emit=writer.checkpoint,
            clock=self.clock,
            limits=runtime.limits,
            backoff=fn.backoff or runtime.backoff,
            sync_pool=self._step_pool,
            function_pool=self._fn_pool,
            retry_after_min=runtime.retry_after_min,
            resolve_function=runtime.registry.resolve,
            new_event_ids=self._event_dicts,
            lease_held=lease_held,
            renew_lease=renew_lease,
        )

    def _http_client(self) -> httpx.AsyncClient:
        """One connection pool for this worker's calls to SDK apps (opened on first use)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=None, follow_redirects=False)
        return self._http

    def _event_dicts(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        # validate and give ids only: the runs they start are planned once, when saved
        return [event.to_dict() for event, _ in validate_all(events, self.runtime.limits)]

    async def close(self) -> None:
        """Close the connection pool; steps still queued for a thread are dropped."""
        if self._http is not None:
            await self._http.aclose()
        self._step_pool.shutdown(wait=False, cancel_futures=True)
        self._fn_pool.shutdown(wait=False, cancel_futures=True)
