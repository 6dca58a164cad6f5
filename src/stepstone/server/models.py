"""The REST API's bodies as pydantic models: the handlers answer with them (encode.py),
and the OpenAPI document's schemas are generated from them (openapi.py), so the two
cannot disagree. Times are seconds since the epoch, except an event's `ts` (ms)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..records import RunStatus, StepStatus

Time = float
StepKind = Literal["run", "sleep", "wait", "invoke", "send"]


class Model(BaseModel):
    # every field a response has is declared: what the document says is what is sent
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorBody(Model):
    error: str = Field(description="what is wrong, for a person")
    status: int = Field(description="the HTTP status")


class ErrorInfo(Model):
    name: str
    message: str
    stack: str = ""


class Sent(Model):
    ids: list[str] = Field(description="the events' ids, in the order sent")
    status: int


class EventInput(Model):
    model_config = ConfigDict(extra="forbid", title="EventInput")
    name: str = Field(max_length=256)
    data: dict[str, Any] = {}
    id: str | None = Field(None, description="idempotency key: a repeat is ignored")
    ts: int | None = Field(None, description="milliseconds since the epoch")
    user: dict[str, Any] | None = None
    v: str | None = None
    meta: dict[str, Any] | None = Field(None, description="kept as sent (the npm SDK's sessions)")


class Event(Model):
    id: str
    name: str
    data: dict[str, Any]
    ts: int = Field(description="milliseconds since the epoch")
    user: dict[str, Any] | None
    v: str | None
    meta: dict[str, Any] | None = None
    received_at: Time
    run_ids: list[str]


class RunSummary(Model):
    id: str
    function_id: str
    status: RunStatus
    attempt: int
    event_ids: list[str]
    event_name: str | None = Field(description="the name of the run's first (trigger) event")
    error: ErrorInfo | None
    created_at: Time
    started_at: Time | None
    ended_at: Time | None


class EventWithRuns(Event):
    runs: list[RunSummary]


class Step(Model):
    id: str = Field(description="the id the function gave the step")
    occurrence: int = Field(
        description="which use of that id this step is in its run: 0, then 1, 2, ... for "
        "an id repeated in a loop"
    )
    hashed_id: str
    kind: StepKind
    status: StepStatus
    attempts: int
    output: Any
    error: ErrorInfo | None
    started_at: Time | None
    ended_at: Time | None
    wake_at: Time | None = Field(description="when a sleep, wait or retry is due")
    detail: dict[str, Any] | None
    kept_from: str | None = Field(
        description="a rerun from a step: the run this completed step was kept from "
        "(its times are that run's)"
    )


class HistoryEntry(Model):
    at: Time
    kind: str
    data: dict[str, Any]


class Run(RunSummary):
    output: Any
    steps: list[Step]
    history: list[HistoryEntry]
    events: list[Event]
    rerun_of: str | None = Field(description="the run this one is a rerun of")
    reruns: list[str] = Field(description="the runs started as reruns of this one")


class RunPage(Model):
    runs: list[RunSummary]
    next_cursor: str | None = Field(
        description="the cursor of the next page; null on the last. A search with `if` "
        "may answer fewer runs than `limit` and still a cursor: it reads at most 5,000 "
        "runs per request"
    )


class EventPage(Model):
    events: list[Event]
    next_cursor: str | None


class Trigger(Model):
    event: str | None = None
    if_: str | None = Field(None, alias="if", description="a CEL expression over `event`")
    cron: str | None = None
    tz: str | None = None
    jitter: float | None = None


class CancelRule(Model):
    event: str
    if_: str | None
    timeout: float | None


class TimeoutsOption(Model):
    start: float | None
    finish: float | None


class ConcurrencyOption(Model):
    limit: int
    key: str | None
    scope: str


class ThrottleOption(Model):
    limit: int
    period: float
    burst: int
    key: str | None


class RateLimitOption(Model):
    limit: int
    period: float
    key: str | None


class DebounceOption(Model):
    period: float
    timeout: float | None
    key: str | None


class BatchOption(Model):
    max_size: int
    timeout: float
    key: str | None


class PriorityOption(Model):
    run: str


class SingletonOption(Model):
    mode: str
    key: str | None


class HttpRuntime(Model):
    type: Literal["http"]
    url: str = Field(description="where the SDK app serves the function")
    app_id: str | None


class Function(Model):
    """A function's definition; an option it does not set is left out."""

    id: str
    name: str
    retries: int
    triggers: list[Trigger]
    cancel_on: list[CancelRule] | None = None
    timeouts: TimeoutsOption | None = None
    concurrency: list[ConcurrencyOption] | None = None
    throttle: ThrottleOption | None = None
    rate_limit: RateLimitOption | None = None
    debounce: DebounceOption | None = None
    batch_events: BatchOption | None = None
    priority: PriorityOption | None = None
    idempotency: str | None = None
    singleton: SingletonOption | None = None
    runtime: HttpRuntime | None = Field(
        None, description="set for a function of an app written with an official SDK"
    )


class FunctionList(Model):
    functions: list[Function]


class StatsBucket(Model):
    start: Time
    counts: dict[str, int] = Field(description="runs created in the bucket, by status")
    p50: float | None = Field(description="median duration (s) of the runs that ended")
    p95: float | None


class StatsWindow(Model):
    window: Literal["hour", "day"]
    since: Time
    bucket_seconds: float
    counts: dict[str, int]
    p50: float | None
    p95: float | None
    buckets: list[StatsBucket]
    complete: bool = Field(description="false when only the newest runs were counted")


class FunctionStats(Model):
    function_id: str
    windows: list[StatsWindow]


class Invoke(Model):
    data: dict[str, Any] = Field({}, description="the data of the invoking event")


class Started(Model):
    run_id: str


class SyncedApp(Model):
    """An app written with an official SDK that synced to this server."""

    id: str
    url: str = Field(description="the app's serve URL")
    sdk: str = Field(description="the SDK and its version, e.g. py:v0.5.19")
    framework: str | None
    app_version: str | None
    synced_at: Time = Field(description="its last sync, successful or not")
    error: str | None = Field(description="why the last sync failed; null: it succeeded")
    functions: list[str] = Field(description="the ids of its functions")


class AppList(Model):
    apps: list[SyncedApp]


class Resync(Model):
    app_id: str


class Resynced(Model):
    app_id: str
    synced: bool
    error: str | None


class CancelRequested(Model):
    run_id: str
    cancel_requested: bool


class RerunRequest(Model):
    from_step: str | None = None


class Rerun(Model):
    run_id: str
    rerun_of: str


class BulkRequest(Model):
    action: Literal["cancel", "rerun"]
    run_ids: list[str] = Field(min_length=1, max_length=100)

    @field_validator("run_ids")
    @classmethod
    def _no_nul(cls, run_ids: list[str]) -> list[str]:
        # no run id holds one, and PostgreSQL text cannot: refused here, not a 500 there
        if any("\x00" in run_id for run_id in run_ids):
            raise ValueError("a run id must not hold a NUL character (\\u0000)")
        return run_ids


class BulkItem(Model):
    run_id: str
    ok: bool
    new_run_id: str | None = Field(description="rerun: the new run")
    error: str | None = Field(description="why this run was not cancelled or rerun")


class BulkResult(Model):
    action: Literal["cancel", "rerun"]
    results: list[BulkItem]


# every model the document names, as components/schemas
RESPONSES: list[type[Model]] = [
    ErrorBody,
    Sent,
    Event,
    EventWithRuns,
    EventPage,
    RunSummary,
    Run,
    RunPage,
    Function,
    FunctionList,
    FunctionStats,
    Started,
    CancelRequested,
    Rerun,
    BulkResult,
    AppList,
    Resynced,
]
REQUESTS: list[type[Model]] = [EventInput, Invoke, RerunRequest, BulkRequest, Resync]
