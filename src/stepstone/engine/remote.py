"""Runs one invocation of a function that lives in an SDK app, over the SDK wire protocol.

The counterpart of `executor.Invocation` for functions synced by the official SDKs
(shared/WIRE.md): the same input (the function, run id, attempt, events, saved steps),
the same `emit` of checkpoint ops and the same outcome ops, so the engine persists an SDK
run exactly as a native one. Only the work differs: instead of calling Python code, it
POSTs call requests to the app and turns each answer into ops.

- Discovery (`stepId=step`) runs the function from the top with its memoized steps. The
  SDK may run one new step at once (StepRun) and stepstone saves it and calls again.
- Planned steps (StepPlanned: a parallel group, or any new step once immediate execution
  is off) are each called on their own `stepId`, concurrently; discovery runs again only
  once the whole group has ended, and with `disable_immediate_execution` from then on.
- A step that failed is saved as retrying (with the backoff or the app's Retry-After) or,
  out of attempts, as failed; a failed step's error is memoized and the function called
  again so it may catch it. A retrying step is called on its own `stepId` when it is due.
- Sleeps, waits and invokes are saved as in-process runs save them, and the invocation
  ends Suspended; when the run wakes, a new invocation calls the function again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx

from .. import ops, tracing
from ..clock import Clock
from ..errors import ConfigError, LeaseLostError
from ..executor import MAX_WAIT, InvocationInput
from ..limits import Limits
from ..records import HistoryEntry, StepRecord, StepStatus
from ..retry import Backoff
from ..sdk import protocol
from ..sdk.signing import SignatureError, SigningKey, canonical_json, sign, verify

log = logging.getLogger("stepstone.remote")

Emit = Callable[[ops.Checkpoint], Awaitable[Any]]
DEFAULT_REQUEST_TIMEOUT = 300.0


# how a saved step that is not over yet keeps its run suspended
_SUSPENDED_AS = {
    StepStatus.SLEEPING: ops.SuspendKind.SLEEP,
    StepStatus.WAITING: ops.SuspendKind.EVENT,
    StepStatus.INVOKING: ops.SuspendKind.INVOKE,
}


class _Abandon(Exception):
    """Write nothing more: the lease was lost, the run cancelled, or storage is down."""


@dataclass(frozen=True)
class _Target:
    """A step to call on its own stepId."""

    hashed_id: str
    step_id: str
    attempt: int  # attempts it has used
    parallel: bool
    is_send: bool = False


class RemoteInvocation:
    """One invocation of an SDK function: call the app, emit ops, return an outcome."""

    def __init__(
        self,
        data: InvocationInput,
        *,
        emit: Emit,
        clock: Clock,
        backoff: Backoff,
        client: httpx.AsyncClient,
        signing_key: SigningKey | None = None,
        limits: Limits | None = None,
        retry_after_min: float = protocol.RETRY_AFTER_MIN,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        runtime = data.function.runtime
        if runtime is None:
            raise ConfigError(
                f"function {data.function.id!r} has no HTTP runtime: it is not an SDK function"
            )
        self._data = data
        self._url = runtime.url
        self._emit_op = emit
        self._clock = clock
        self._backoff = backoff
        self._client = client
        self._key = signing_key
        self._limits = limits or Limits()
        self._retry_after_min = retry_after_min
        self._timeout = request_timeout
        self._max_attempts = data.function.max_attempts
        self._saved: dict[str, StepRecord] = {s.hashed_id: s for s in data.steps}
        finished = [s for s in data.steps if s.status in (StepStatus.COMPLETED, StepStatus.FAILED)]
        finished.sort(key=lambda s: s.ended_at or 0.0)
        self._order = [s.hashed_id for s in finished]
        # once a parallel group was planned (or the function's own code failed before),
        # new steps are planned and then called on their own, never run during discovery
        self._disable_immediate = data.attempt > 0 or any(
            (s.detail or {}).get("parallel") for s in data.steps
        )
        self._suspensions: list[ops.Suspension] = []
        self._stopping: str | None = None
        self._calls = 0

    @property
    def run_id(self) -> str:
        return self._data.run_id

    def take_logs(self) -> list[HistoryEntry]:
        """The SDK app logs on its own side: nothing to hand to the engine."""
        return []

    def stop(self, reason: str) -> None:
        """No new call starts; answers of calls in flight are still saved."""
        self._stopping = self._stopping or reason

    # -- the invocation ------------------------------------------------------------------
    async def execute(self) -> ops.Outcome:
        try:
            outcome = await self._settle_saved()
            while outcome is None:
                if self._stopping:
                    return ops.Abandoned(self._stopping)
                if self._suspensions:
                    times = [s.until for s in self._suspensions if s.until is not None]
                    return ops.Suspended(min(times) if times else None, list(self._suspensions))
                outcome = await self._discover()
            return outcome
        except _Abandon as exc:
            return ops.Abandoned(str(exc))
        finally:
            self._stopping = self._stopping or "the invocation ended"

    async def _settle_saved(self) -> ops.Outcome | None:
        """Resume the saved steps that are not finished: end due sleeps, expire due waits
        and invokes, call due retries; the others keep the run suspended."""
        now = self._clock.now()
        due: list[_Target] = []
        for record in list(self._saved.values()):
            if record.status in (StepStatus.COMPLETED, StepStatus.FAILED):
                continue
            is_due = record.wake_at is not None and record.wake_at <= now
            if not is_due:
                kind = _SUSPENDED_AS.get(record.status, ops.SuspendKind.RETRY)
                self._suspend(kind, record.wake_at, f"step {record.id!r} {record.status}")
            elif record.status is StepStatus.RETRYING:
                parallel = bool((record.detail or {}).get("parallel"))
                due.append(_Target(record.hashed_id, record.id, record.attempts, parallel))
            elif record.status is StepStatus.SLEEPING:
                await self._save(replace(record, status=StepStatus.COMPLETED, ended_at=now), "null")
            elif record.status is StepStatus.WAITING:
                expired = replace(record, status=StepStatus.COMPLETED, ended_at=now)
                self._finish(await self._emit(ops.ExpireStep(expired)))
            elif record.status is StepStatus.INVOKING:
                error = {
                    "name": "InvokeTimeoutError",
                    "message": f"step.invoke({record.id!r}) timed out before the invoked run ended",
                    "stack": "",
                }
                expired = replace(record, status=StepStatus.FAILED, error=error, ended_at=now)
                self._finish(await self._emit(ops.ExpireStep(expired)))
        if due:
            return await self._run_targets(due)
        return None

    # -- calls ---------------------------------------------------------------------------
    async def _call(self, step_id: str, *, attempt: int) -> protocol.Answer:
        self._calls += 1
        request = protocol.CallRequest(
            run_id=self._data.run_id,
            events=[e.to_dict() for e in self._data.events],
            steps=self._memos(),
            stack=list(self._order),
            attempt=attempt,
            max_attempts=self._max_attempts,
            disable_immediate_execution=self._disable_immediate,
        )
        try:
            body = canonical_json(request.body())
        except ValueError as exc:
            error = {"name": "SerializationError", "message": str(exc), "stack": ""}
            return protocol.CallFailed(error, retriable=False)
        now = self._clock.now()
        signature = None if self._key is None else sign(body, self._key, now=now)
        headers = protocol.request_headers(
            signature=signature, server_kind="dev" if self._key is None else "cloud"
        )
        headers["X-Inngest-Job-Id"] = self._data.run_id
        url = protocol.step_url(self._url, step_id)
        try:  # the call's span, whose traceparent the request carries
            with tracing.call_request(url, self._data.function.id, self._data.run_id, headers):
                answer = await self._client.post(
                    url, content=body, headers=headers, timeout=self._timeout
                )
        except httpx.TimeoutException:
            return protocol.no_answer(f"the app at {url} did not answer within {self._timeout:g} s")
        except httpx.HTTPError as exc:
            return protocol.no_answer(f"could not call the app at {url}: {exc!r}")
        if self._key is not None and answer.status_code in (200, 206):
            try:
                verify(answer.content, answer.headers.get("X-Inngest-Signature"), self._key)
            except SignatureError as exc:
                message = f"the answer of the app at {url} was refused: {exc}"
                return protocol.CallFailed(
                    {"name": "SignatureError", "message": message, "stack": ""},
                    retriable=False,
                    status=answer.status_code,
                )
        return protocol.parse_answer(
            answer.status_code,
            answer.headers,
            answer.content,
            now=self._clock.now(),
            retry_after_min=self._retry_after_min,
        )

    def _memos(self) -> dict[str, dict[str, Any] | None]:
        memos: dict[str, dict[str, Any] | None] = {}
        for hashed in self._order:
            record = self._saved[hashed]
            if record.status is StepStatus.FAILED:
                memos[hashed] = protocol.memo_error(record.error or {})
            elif record.kind == "wait" and isinstance(record.output, dict):
                memos[hashed] = protocol.memo_data(protocol.event_payload(record.output))
            else:
                memos[hashed] = protocol.memo_data(record.output)
        return memos

    async def _discover(self) -> ops.Outcome | None:
        limit = self._limits.max_steps
        if len(self._saved) > limit or self._calls > 2 * limit + 10:
            message = (
                f"function {self._data.function.id!r} ran more than {limit} steps in one run "
                f"({len(self._saved)} steps, {self._calls} calls in this invocation); raise "
                "Limits(max_steps=...) up to 10000 or split the work with step.invoke"
            )
            return ops.RunFailed({"name": "LimitExceededError", "message": message, "stack": ""})
        started = self._clock.now()
        answer = await self._call(protocol.DISCOVERY, attempt=self._data.attempt)
        if isinstance(answer, protocol.Done):
            return self._completed_run(answer.output)
        if isinstance(answer, protocol.CallFailed):
            return self._run_error(answer)
        planned: list[_Target] = []
        outcome: ops.Outcome | None = None
        alone = len(answer.ops) == 1
        for op in answer.ops:
            if isinstance(op, protocol.StepPlanned):
                planned.append(_Target(op.id, op.step_id, self._attempts(op.id), False, op.is_send))
            else:
                outcome = await self._apply(op, answer, started=started, alone=alone) or outcome
        if outcome is not None:
            return outcome
        if planned:
            if len(planned) > 1:
                self._disable_immediate = True
                planned = [replace(t, parallel=True) for t in planned]
            return await self._run_targets(planned)
        return None

    async def _run_targets(self, targets: Sequence[_Target]) -> ops.Outcome | None:
        """Call each target on its own stepId, concurrently; the group ends when all have."""
        results = await asyncio.gather(
            *(self._run_target(t, alone=len(targets) == 1) for t in targets),
            return_exceptions=True,
        )
        outcomes: list[ops.Outcome] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            if result is not None:
                outcomes.append(result)
        failed = [o for o in outcomes if isinstance(o, ops.RunFailed)]
        return failed[0] if failed else (outcomes[0] if outcomes else None)

    async def _run_target(self, target: _Target, *, alone: bool) -> ops.Outcome | None:
        if self._stopping:
            return None
        started = self._clock.now()
        answer = await self._call(target.hashed_id, attempt=target.attempt)
        if isinstance(answer, protocol.Done):
            return self._completed_run(answer.output)
        if isinstance(answer, protocol.CallFailed):
            failure = protocol.StepError(
                target.hashed_id, target.step_id, target.step_id, error=answer.error
            )
            await self._step_failed(
                failure,
                final=not answer.retriable,
                retry_at=answer.retry_at,
                started=started,
                parallel=target.parallel,
            )
            return None if answer.retriable else ops.RunFailed(answer.error)
        outcome: ops.Outcome | None = None
        for op in answer.ops:
            if isinstance(op, protocol.StepPlanned):
                continue  # found again by the next discovery
            result = await self._apply(
                op,
                answer,
                started=started,
                alone=alone,
                parallel=target.parallel,
                is_send=target.is_send,
            )
            outcome = result or outcome
        return outcome

    # -- answers into ops ------------------------------------------------------------------
    async def _apply(
        self,
        op: protocol.AnyOp,
        answer: protocol.Ops,
        *,
        started: float,
        alone: bool,
        parallel: bool = False,
        is_send: bool = False,
    ) -> ops.Outcome | None:
        if isinstance(op, protocol.RunComplete):
            return self._completed_run(op.data)
        if isinstance(op, protocol.StepRun):
            await self._step_completed(op, started, alone, parallel, is_send or op.is_send)
        elif isinstance(op, protocol.StepError):
            final = answer.no_retry
            await self._step_failed(
                op, final=final, retry_at=answer.retry_at, started=started, parallel=parallel
            )
        elif isinstance(op, protocol.StepFailed):
            await self._step_failed(
                op, final=True, retry_at=None, started=started, parallel=parallel
            )
        elif isinstance(op, protocol.Sleep):
            await self._sleep(op)
        elif isinstance(op, protocol.WaitForEvent):
            await self._wait(op)
        elif isinstance(op, protocol.InvokeFunction):
            await self._invoke(op)
        return None

    def _attempts(self, hashed: str) -> int:
        prior = self._saved.get(hashed)
        return prior.attempts if prior is not None else 0

    async def _step_completed(
        self, op: protocol.StepRun, started: float, alone: bool, parallel: bool, is_send: bool
    ) -> None:
        prior = self._saved.get(op.id)
        if prior is not None and prior.status in (StepStatus.COMPLETED, StepStatus.FAILED):
            return  # already saved: the app ran a memoized step again
        output_json = json.dumps(op.data)
        size = len(output_json.encode())
        if size > self._limits.max_step_output:
            message = (
                f"the output of step {op.step_id!r} is {size} bytes, over the limit of "
                f"{self._limits.max_step_output}; save large data elsewhere and return a reference"
            )
            await self._fail_for_good(op, "LimitExceededError", message, started, parallel)
            return
        record = StepRecord(
            id=op.step_id,
            hashed_id=op.id,
            status=StepStatus.COMPLETED,
            attempts=self._attempts(op.id) + 1,
            started_at=started,
            ended_at=self._clock.now(),
            kind="send" if is_send else "run",
            detail={"parallel": True} if parallel else None,
        )
        await self._save(record, output_json, alone=alone)

    async def _fail_for_good(
        self, op: protocol.Op, name: str, message: str, started: float, parallel: bool
    ) -> None:
        error = {"name": name, "message": message, "stack": ""}
        failed = protocol.StepFailed(op.id, op.step_id, op.display_name, error=error)
        await self._step_failed(
            failed, final=True, retry_at=None, started=started, parallel=parallel
        )

    def _retry_time(self, attempt: int, retry_at: float | None) -> float:
        """When attempt number `attempt + 1` may start: the app's Retry-After, or the backoff."""
        if retry_at is not None:
            return retry_at
        delay = self._backoff(attempt)
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        return self._clock.now() + max(0.0, seconds)

    async def _step_failed(
        self,
        op: protocol.StepError | protocol.StepFailed,
        *,
        final: bool,
        retry_at: float | None,
        started: float,
        parallel: bool,
    ) -> None:
        attempt = self._attempts(op.id)
        now = self._clock.now()
        retry = not final and attempt + 1 < self._max_attempts
        at = self._retry_time(attempt, retry_at) if retry else None
        record = StepRecord(
            id=op.step_id,
            hashed_id=op.id,
            status=StepStatus.RETRYING if retry else StepStatus.FAILED,
            attempts=attempt + 1,
            error=op.error,
            started_at=started,
            ended_at=now,
            wake_at=at,
            detail={"parallel": True} if parallel else None,
        )
        await self._emit(ops.SaveStep(record, error=op.error))
        if retry:
            self._saved[op.id] = record
            self._suspend(ops.SuspendKind.RETRY, at, f"step {op.step_id!r} retrying")
        else:
            self._finish(record)

    async def _sleep(self, op: protocol.Sleep) -> None:
        now = self._clock.now()
        until = min(op.until, now + MAX_WAIT)
        record = StepRecord(
            id=op.step_id,
            hashed_id=op.id,
            status=StepStatus.SLEEPING,
            kind="sleep",
            started_at=now,
            wake_at=until,
        )
        if until <= now:
            await self._save(replace(record, status=StepStatus.COMPLETED, ended_at=now), "null")
            return
        await self._emit(ops.SaveStep(record))
        self._saved[op.id] = record
        self._suspend(ops.SuspendKind.SLEEP, until, "sleeping")

    async def _wait(self, op: protocol.WaitForEvent) -> None:
        now = self._clock.now()
        if op.if_ is not None:
            from ..expressions import Expression

            try:
                Expression(op.if_, where=f"step.waitForEvent({op.step_id!r}) if")
            except ConfigError as exc:
                await self._fail_for_good(op, "ConfigError", str(exc), now, False)
                return
        record = StepRecord(
            id=op.step_id,
            hashed_id=op.id,
            status=StepStatus.WAITING,
            kind="wait",
            started_at=now,
            wake_at=now + min(op.timeout, MAX_WAIT),
            detail={"event": op.event, "if": op.if_},
        )
        await self._emit(ops.RegisterWait(record, op.event, op.if_))
        self._saved[op.id] = record
        self._suspend(ops.SuspendKind.EVENT, record.wake_at, f"waiting for {op.event!r}")

    async def _invoke(self, op: protocol.InvokeFunction) -> None:
        now = self._clock.now()
        timeout = MAX_WAIT if op.timeout is None else min(op.timeout, MAX_WAIT)
        record = StepRecord(
            id=op.step_id,
            hashed_id=op.id,
            status=StepStatus.INVOKING,
            kind="invoke",
            started_at=now,
            wake_at=now + timeout,
            detail={"function_id": op.function_id},
        )
        await self._emit(ops.StartInvoke(record, op.function_id, op.data))
        self._saved[op.id] = record
        self._suspend(ops.SuspendKind.INVOKE, record.wake_at, f"invoking {op.function_id}")

    # -- outcomes ------------------------------------------------------------------------
    def _completed_run(self, output: Any) -> ops.Outcome:
        return ops.RunCompleted(json.dumps(output))

    def _run_error(self, failure: protocol.CallFailed) -> ops.Outcome:
        attempt = self._data.attempt
        if not failure.retriable or attempt + 1 >= self._max_attempts:
            return ops.RunFailed(failure.error)
        return ops.RunRetry(failure.error, self._retry_time(attempt, failure.retry_at))

    # -- state ---------------------------------------------------------------------------
    def _suspend(self, kind: ops.SuspendKind, at: float | None, detail: str) -> None:
        self._suspensions.append(ops.Suspension(kind, at, detail))

    def _finish(self, record: StepRecord) -> None:
        """A step ended (completed or failed for good): it is memoized from now on."""
        self._saved[record.hashed_id] = record
        if record.status in (StepStatus.COMPLETED, StepStatus.FAILED):
            if record.hashed_id in self._order:
                self._order.remove(record.hashed_id)
            self._order.append(record.hashed_id)

    async def _save(self, record: StepRecord, output_json: str, *, alone: bool = False) -> None:
        await self._emit(ops.SaveStep(record, output_json=output_json, alone=alone))
        self._finish(replace(record, output=json.loads(output_json)))

    async def _emit(self, op: ops.Checkpoint) -> Any:
        try:
            return await self._emit_op(op)
        except LeaseLostError as exc:
            log.warning("run %s: lease lost, write refused: %s", self._data.run_id, exc)
            self.stop(f"lease lost: {exc}")
            raise _Abandon(f"lease lost: {exc}") from None
        except Exception as exc:
            log.exception("could not save a checkpoint of run %s", self._data.run_id)
            self.stop(f"storage error: {exc}")
            raise _Abandon(f"storage error: {exc}") from None
