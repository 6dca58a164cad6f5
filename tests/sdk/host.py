"""A fake engine for driving RemoteInvocation against real SDK apps.

`SdkServer` is the HTTP side of a server (in a thread): it takes the SDKs' syncs
(`POST /fn/register`) and events (`POST /e/{key}`). `FakeHost` plays the engine for one
run: it keeps the run's steps as the store would from the checkpoint ops, and invokes the
function again and again, as the worker would, until the run ends: sleeps and retries
are waited out, waits are resolved by a callback, invokes run the invoked function.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from stepstone import ops
from stepstone.clock import Clock
from stepstone.engine.remote import RemoteInvocation
from stepstone.executor import InvocationInput
from stepstone.function import FunctionDef, function_from_config
from stepstone.ids import new_id
from stepstone.records import Event, StepRecord, StepStatus
from stepstone.sdk import register
from stepstone.sdk.signing import SigningKey, parse_signing_key
from tests.sdk.harness import free_port


class SdkServer:
    """`/fn/register` and `/e/{key}` of a server, recording what the SDKs send."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.syncs: list[dict[str, Any]] = []
        self.sync_headers: list[dict[str, str]] = []
        self.events: list[dict[str, Any]] = []
        self.answer_signature: str | None = None  # what /fake-sdk signs its answer with
        self._lock = threading.Lock()
        routes = [
            Route("/fn/register", self._register, methods=["POST"]),
            Route("/e/{key}", self._events, methods=["POST"]),
            Route("/fake-sdk", self._fake_sdk, methods=["POST"]),
        ]
        config = uvicorn.Config(
            Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> SdkServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise AssertionError("the test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    async def _register(self, request: Request) -> JSONResponse:
        body = await request.json()
        with self._lock:
            self.syncs.append(body)
            self.sync_headers.append(dict(request.headers))
        try:
            register.translate(register.parse_register(body))
        except register.RegisterError as exc:
            return JSONResponse(register.register_failed(400, str(exc)), status_code=400)
        return JSONResponse(register.register_ok())

    async def _events(self, request: Request) -> JSONResponse:
        body = await request.json()
        batch = body if isinstance(body, list) else [body]
        ids = [new_id() for _ in batch]
        with self._lock:
            for event_id, event in zip(ids, batch, strict=True):
                self.events.append({**event, "id": event.get("id") or event_id})
        return JSONResponse({"ids": ids, "status": 200})

    async def _fake_sdk(self, request: Request) -> JSONResponse:
        headers = (
            {} if self.answer_signature is None else {"X-Inngest-Signature": self.answer_signature}
        )
        return JSONResponse({"done": True}, headers=headers)

    def last_sync(self, app_id: str) -> dict[str, Any]:
        with self._lock:
            for body in reversed(self.syncs):
                if body.get("appname", body.get("appName")) == app_id:
                    return body
        raise AssertionError(f"app {app_id!r} never synced")


async def sync(app_url: str, server: SdkServer, app_id: str) -> dict[str, FunctionDef]:
    """PUT the app (it POSTs /fn/register), and the functions of its sync, as stepstone's."""
    async with httpx.AsyncClient() as client:
        answer = await client.put(app_url, timeout=30)
    assert answer.status_code == 200, answer.text
    synced = register.translate(register.parse_register(server.last_sync(app_id)))
    return {config["id"]: function_from_config(config) for config in synced.functions}


async def _ignore(op: ops.Checkpoint) -> None:
    return None


def one_invocation(
    fn: FunctionDef,
    client: httpx.AsyncClient,
    *,
    emit: Callable[[ops.Checkpoint], Any] = _ignore,
    key: str | None = None,
) -> RemoteInvocation:
    """A first invocation of `fn` for a test/sequential event, outside any FakeHost."""
    return RemoteInvocation(
        InvocationInput(fn, "RUN1", 0, [Event("test/sequential", {"start": 1}, "E1", 1)], []),
        emit=emit,
        clock=Clock(),
        backoff=lambda attempt: 1.0,
        client=client,
        signing_key=None if key is None else parse_signing_key(key),
    )


@dataclass
class RunResult:
    outcome: ops.Outcome
    steps: dict[str, StepRecord]
    checkpoints: list[ops.Checkpoint]
    invocations: int
    retries: int = 0

    @property
    def output(self) -> Any:
        assert isinstance(self.outcome, ops.RunCompleted), self.outcome
        return json.loads(self.outcome.output_json)

    def step(self, step_id: str) -> StepRecord:
        for record in self.steps.values():
            if record.id == step_id:
                return record
        raise KeyError(f"no step {step_id!r} in {[s.id for s in self.steps.values()]}")


@dataclass
class FakeHost:
    """Plays the engine for runs of SDK functions."""

    functions: dict[str, FunctionDef]
    client: httpx.AsyncClient
    signing_key: SigningKey | None = None
    on_wait: Callable[[StepRecord], dict[str, Any] | None] | None = None
    backoff: Callable[[int], float] = lambda attempt: 0.05
    max_invocations: int = 30
    invoked: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def run(self, function_id: str, event: dict[str, Any]) -> RunResult:
        fn = self.functions[function_id]
        trigger = Event(
            name=event["name"],
            data=event.get("data", {}),
            id=event.get("id") or new_id(),
            ts=event.get("ts") or int(time.time() * 1000),
        )
        steps: dict[str, StepRecord] = {}
        checkpoints: list[ops.Checkpoint] = []
        run_id, attempt, retries = new_id(), 0, 0
        pending_invokes: list[asyncio.Task[RunResult]] = []

        async def emit(op: ops.Checkpoint) -> Any:
            checkpoints.append(op)
            if isinstance(op, ops.SaveStep):
                output = None if op.output_json is None else json.loads(op.output_json)
                steps[op.step.hashed_id] = replace(op.step, output=output)
            elif isinstance(op, ops.SendEvents):
                steps[op.step.hashed_id] = op.step
            elif isinstance(op, (ops.RegisterWait, ops.StartInvoke)):
                steps[op.step.hashed_id] = op.step
                if isinstance(op, ops.StartInvoke):
                    self.invoked.append((op.function_id, op.data))
                    child = {"name": "stepstone/function.invoked", "data": op.data}
                    task = asyncio.ensure_future(self.run(op.function_id, child))
                    task.add_done_callback(lambda t, hid=op.step.hashed_id: finish_invoke(hid, t))
                    pending_invokes.append(task)
            elif isinstance(op, ops.ExpireStep):
                current = steps.get(op.step.hashed_id)
                if current is not None and current.status in (
                    StepStatus.COMPLETED,
                    StepStatus.FAILED,
                ):
                    return current
                steps[op.step.hashed_id] = op.step
                return op.step
            return None

        def finish_invoke(hashed: str, task: asyncio.Task[RunResult]) -> None:
            result = task.result()
            record = steps[hashed]
            if isinstance(result.outcome, ops.RunCompleted):
                steps[hashed] = replace(
                    record,
                    status=StepStatus.COMPLETED,
                    output=json.loads(result.outcome.output_json),
                    ended_at=time.time(),
                    wake_at=time.time(),
                )
            else:
                error = getattr(result.outcome, "error", {"name": "Error", "message": "failed"})
                steps[hashed] = replace(
                    record, status=StepStatus.FAILED, error=error, ended_at=time.time()
                )

        for invocation_number in range(1, self.max_invocations + 1):
            invocation = RemoteInvocation(
                InvocationInput(fn, run_id, attempt, [trigger], list(steps.values())),
                emit=emit,
                clock=Clock(),
                backoff=self.backoff,
                client=self.client,
                signing_key=self.signing_key,
                retry_after_min=0.05,
            )
            outcome = await invocation.execute()
            if isinstance(outcome, (ops.RunCompleted, ops.RunFailed, ops.Abandoned)):
                return RunResult(outcome, steps, checkpoints, invocation_number, retries)
            if isinstance(outcome, ops.RunRetry):
                attempt += 1
                retries += 1
                await asyncio.sleep(max(0.0, outcome.at - time.time()))
                continue
            assert isinstance(outcome, ops.Suspended), outcome
            await self._resolve(steps, pending_invokes, outcome)
        raise AssertionError(f"the run did not end in {self.max_invocations} invocations")

    async def _resolve(
        self,
        steps: dict[str, StepRecord],
        pending_invokes: list[asyncio.Task[RunResult]],
        outcome: ops.Suspended,
    ) -> None:
        """What the engine would do until the run is due again."""
        for hashed, record in list(steps.items()):
            if record.status is StepStatus.WAITING and self.on_wait is not None:
                matched = self.on_wait(record)
                if matched is not None:
                    steps[hashed] = replace(
                        record,
                        status=StepStatus.COMPLETED,
                        output=matched,
                        ended_at=time.time(),
                    )
                    return
        if pending_invokes:
            await asyncio.gather(*pending_invokes)
            pending_invokes.clear()
            return
        if outcome.at is not None:
            await asyncio.sleep(min(10.0, max(0.0, outcome.at - time.time())))
