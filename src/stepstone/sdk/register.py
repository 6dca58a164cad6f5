"""The sync payload of the official SDKs (`POST /fn/register`), parsed and translated.

Both SDKs POST their app and functions when their serve endpoint gets a PUT (WIRE.md,
"Sync"). The Python SDK spells the app id `appname` and the deploy type `deploy_type`;
the npm SDK `appName` and `deployType`, and adds `featureObservations`. Each SDK
function becomes a stepstone function config: the dict that `FunctionDef.describe()`
produces and `function.function_from_config` reads, with an HTTP runtime (the URL the
SDK registered for its steps) instead of Python code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from .protocol import from_sdk_event_name

DEFAULT_RETRIES = 4  # stepstone's default, as the platform's server: 5 attempts
ROOT_STEP = "step"


class RegisterError(ValueError):
    """A sync payload stepstone cannot take; `problems` lists each thing wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("the app's sync payload was refused: " + "; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Runtime(_Strict):
    type: Literal["http", "ws"]
    url: str


class Retries(_Strict):
    attempts: int | None = None


class StepConfig(_Strict):
    id: str
    name: str
    runtime: Runtime
    retries: Retries | None = None


class EventTriggerConfig(_Strict):
    event: str
    expression: str | None = None


class CronTriggerConfig(_Strict):
    cron: str
    jitter: str | None = None


class ConcurrencyConfig(_Strict):
    limit: int
    key: str | None = None
    scope: Literal["fn", "env", "account"] | None = None


class ThrottleConfig(_Strict):
    limit: int
    period: str
    burst: int | None = None
    key: str | None = None


class RateLimitConfig(_Strict):
    limit: int
    period: str
    key: str | None = None


class DebounceConfig(_Strict):
    period: str
    key: str | None = None
    timeout: str | None = None


class BatchConfig(_Strict):
    max_size: int = Field(alias="maxSize")
    timeout: str
    key: str | None = None
    if_: str | None = Field(default=None, alias="if")


class PriorityConfig(_Strict):
    run: str | None = None


class SingletonConfig(_Strict):
    mode: Literal["skip", "cancel"]
    key: str | None = None


class CancelConfig(_Strict):
    event: str
    if_: str | None = Field(default=None, alias="if")
    timeout: str | None = None


class TimeoutsConfig(_Strict):
    start: str | None = None
    finish: str | None = None


class SdkFunction(_Strict):
    """One function as the SDKs register it (`id` is `<app id>-<fn id>`)."""

    id: str
    name: str | None = None
    triggers: list[EventTriggerConfig | CronTriggerConfig]
    steps: dict[str, StepConfig]
    idempotency: str | None = None
    batch_events: BatchConfig | None = Field(default=None, alias="batchEvents")
    rate_limit: RateLimitConfig | None = Field(default=None, alias="rateLimit")
    throttle: ThrottleConfig | None = None
    singleton: SingletonConfig | None = None
    cancel: list[CancelConfig] | None = None
    debounce: DebounceConfig | None = None
    timeouts: TimeoutsConfig | None = None
    priority: PriorityConfig | None = None
    concurrency: int | ConcurrencyConfig | list[ConcurrencyConfig] | None = None


class RegisterRequest(BaseModel):
    """The body of `POST /fn/register`. Keys stepstone does not use are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    url: str
    v: str | None = None
    sdk: str
    framework: str | None = None
    app_name: str = Field(validation_alias=AliasChoices("appName", "appname", "app_name"))
    deploy_type: Literal["ping"] = Field(
        default="ping", validation_alias=AliasChoices("deployType", "deploy_type")
    )
    app_version: str | None = Field(
        default=None, validation_alias=AliasChoices("appVersion", "app_version")
    )
    deploy_id: str | None = Field(default=None, validation_alias=AliasChoices("deployId"))
    capabilities: dict[str, str] | None = None
    functions: list[SdkFunction]


@dataclass(frozen=True)
class SyncedApp:
    """A synced app, translated: what the server stores and publishes."""

    app_id: str
    url: str
    sdk: str  # e.g. "py:v0.5.19", "js:v4.24.0"
    framework: str | None
    app_version: str | None
    functions: list[dict[str, Any]]  # stepstone function configs, each with a "runtime"


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse_register(body: bytes | str | dict[str, Any]) -> RegisterRequest:
    """The register payload, or RegisterError listing every field that is wrong."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise RegisterError([f"the body is not JSON: {exc}"]) from None
    if not isinstance(body, dict):
        raise RegisterError(["the body must be a JSON object"])
    try:
        return RegisterRequest.model_validate(body)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not _is_union_tag(p))
            problems.append(f"{_where(loc)}: {error['msg']}")
        raise RegisterError(sorted(set(problems))) from None


def _is_union_tag(part: int | str) -> bool:
    # pydantic names the union member it tried ("EventTriggerConfig", "int", ...)
    return isinstance(part, str) and (part[:1].isupper() or part in ("int", "list[...]"))


_CRON_TZ = re.compile(r"^(?:CRON_)?TZ=(\S+)\s+(.*)$")


def _drop_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def translate_function(fn: SdkFunction, *, app_id: str) -> dict[str, Any]:
    """The stepstone function config of one SDK function; RegisterError if it cannot run."""
    where = f"function {fn.id!r}"
    problems: list[str] = []
    root = fn.steps.get(ROOT_STEP)
    if root is None:
        raise RegisterError([f"{where}: steps has no {ROOT_STEP!r} entry with its runtime URL"])
    if root.runtime.type != "http":
        problems.append(
            f"{where}: runtime {root.runtime.type!r} (connect) is not supported; serve the "
            "app over HTTP"
        )
    retries = DEFAULT_RETRIES
    if root.retries is not None and root.retries.attempts is not None:
        retries = root.retries.attempts
    triggers: list[dict[str, Any]] = []
    for trigger in fn.triggers:
        if isinstance(trigger, EventTriggerConfig):
            event = from_sdk_event_name(trigger.event)
            triggers.append(_drop_none({"event": event, "if": trigger.expression}))
            continue
        cron, tz = trigger.cron, None
        match = _CRON_TZ.match(cron.strip())
        if match:
            tz, cron = match.group(1), match.group(2)
        item: dict[str, Any] = {"cron": cron, "tz": tz}
        if trigger.jitter is not None:
            item["jitter"] = _seconds(trigger.jitter, f"{where} cron jitter", problems)
        triggers.append(_drop_none(item))
    config: dict[str, Any] = {
        "id": fn.id,
        "name": fn.name or fn.id,
        "retries": retries,
        "triggers": triggers,
        "runtime": {"type": "http", "url": root.runtime.url, "app_id": app_id},
    }
    if fn.concurrency is not None:
        rules = fn.concurrency if isinstance(fn.concurrency, list) else [fn.concurrency]
        if rules:
            config["concurrency"] = [
                {"limit": r}
                if isinstance(r, int)
                else _drop_none({"limit": r.limit, "key": r.key, "scope": r.scope})
                for r in rules
            ]
    if fn.throttle is not None:
        t = fn.throttle
        config["throttle"] = _drop_none(
            {"limit": t.limit, "period": t.period, "burst": t.burst, "key": t.key}
        )
    if fn.rate_limit is not None:
        r = fn.rate_limit
        config["rate_limit"] = _drop_none({"limit": r.limit, "period": r.period, "key": r.key})
    if fn.debounce is not None:
        d = fn.debounce
        config["debounce"] = _drop_none({"period": d.period, "key": d.key, "timeout": d.timeout})
    if fn.batch_events is not None:
        b = fn.batch_events
        if b.if_ is not None:
            problems.append(f"{where}: batchEvents.if is not supported by stepstone")
        config["batch_events"] = _drop_none(
            {"max_size": b.max_size, "timeout": b.timeout, "key": b.key}
        )
    if fn.priority is not None and fn.priority.run is not None:
        config["priority"] = {"run": fn.priority.run}
    if fn.idempotency is not None:
        config["idempotency"] = fn.idempotency
    if fn.singleton is not None:
        config["singleton"] = _drop_none({"mode": fn.singleton.mode, "key": fn.singleton.key})
    if fn.cancel:
        config["cancel_on"] = [
            _drop_none({"event": from_sdk_event_name(c.event), "if_": c.if_, "timeout": c.timeout})
            for c in fn.cancel
        ]
    if fn.timeouts is not None and (fn.timeouts.start or fn.timeouts.finish):
        config["timeouts"] = _drop_none({"start": fn.timeouts.start, "finish": fn.timeouts.finish})
    if problems:
        raise RegisterError(problems)
    return config


def _seconds(text: str, what: str, problems: list[str]) -> float:
    from ..durations import parse_duration
    from ..errors import ConfigError

    try:
        return parse_duration(text, what=what)
    except ConfigError as exc:
        problems.append(str(exc))
        return 0.0


def translate(request: RegisterRequest) -> SyncedApp:
    """Every function of the app as a stepstone config, checked as stepstone defines them.

    Raises RegisterError listing the problems of every function that cannot be taken.
    """
    from ..errors import ConfigError
    from ..function import function_from_config

    problems: list[str] = []
    configs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for fn in request.functions:
        if fn.id in seen:
            problems.append(f"function {fn.id!r} is registered twice")
            continue
        seen.add(fn.id)
        try:
            config = translate_function(fn, app_id=request.app_name)
            function_from_config(config)  # the same checks as a function defined in Python
        except RegisterError as exc:
            problems.extend(exc.problems)
            continue
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        configs.append(config)
    if problems:
        raise RegisterError(problems)
    return SyncedApp(
        app_id=request.app_name,
        url=request.url,
        sdk=request.sdk,
        framework=request.framework,
        app_version=request.app_version,
        functions=configs,
    )


def register_ok(*, modified: bool = True) -> dict[str, Any]:
    """The answer to a sync that was stored (js reads `status`, `modified`, `skipped`)."""
    return {"ok": True, "status": 200, "modified": modified, "skipped": False}


def register_failed(status: int, error: str) -> dict[str, Any]:
    """The answer to a refused sync: js takes the PUT's status from the body's `status`."""
    return {"ok": False, "status": status, "error": error}
