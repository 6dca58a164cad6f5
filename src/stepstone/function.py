"""Function definitions: id, triggers, retries and options, checked when defined."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from croniter import croniter

from . import options
from .errors import ConfigError
from .expressions import Expression
from .flow import FLOW_OPTION_NAMES, FlowOptions, build_flow
from .options import CancelRule, TimeoutLimits
from .retry import Backoff

MAX_TRIGGERS = 10
MAX_RETRIES = 20
MAX_FUNCTION_ID = 128  # characters; any others are allowed, as on the reference platform


@dataclass(frozen=True)
class EventTrigger:
    event: str
    if_: str | None = None


@dataclass(frozen=True)
class CronTrigger:
    cron: str
    tz: str | None = None
    jitter: float = 0.0


@dataclass(frozen=True)
class HttpRuntime:
    """Where a function that lives in an SDK app is called: its registered step URL."""

    url: str
    app_id: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"type": "http", "url": self.url, "app_id": self.app_id}


Trigger = EventTrigger | CronTrigger
TriggerSpec = str | Trigger | dict[str, Any]  # a dict with a trigger's fields works too


def on_event(event: str, if_: str | None = None) -> EventTrigger:
    """Trigger on events named `event` (`*` matches any characters), optionally filtered by CEL."""
    return EventTrigger(event, if_)


def on_cron(cron: str, tz: str | None = None, jitter: float = 0.0) -> CronTrigger:
    """Trigger on a cron schedule, in timezone `tz` (default UTC)."""
    return CronTrigger(cron, tz, jitter)


@dataclass(frozen=True)
class CompiledEventTrigger:
    event: str
    pattern: re.Pattern[str] | None  # None: an exact name
    condition: Expression | None

    def matches(self, name: str, event: dict[str, Any]) -> bool:
        if self.pattern is None:
            if name != self.event:
                return False
        elif not self.pattern.fullmatch(name):
            return False
        return self.condition is None or self.condition.matches({"event": event})


@dataclass
class FunctionDef:
    id: str
    handler: Callable[..., Any]
    name: str
    retries: int
    backoff: Backoff | None
    event_triggers: list[CompiledEventTrigger] = field(default_factory=list)
    cron_triggers: list[CronTrigger] = field(default_factory=list)
    is_async: bool = True
    cancel_on: list[CancelRule] = field(default_factory=list)
    timeouts: TimeoutLimits | None = None
    flow: FlowOptions | None = None  # None: no flow control
    runtime: HttpRuntime | None = None  # set: the function lives in an SDK app at this URL

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def matches(self, name: str, event: dict[str, Any]) -> bool:
        return any(t.matches(name, event) for t in self.event_triggers)

    def describe(self) -> dict[str, Any]:
        """The function's definition as JSON: what the registry publishes to other processes."""
        triggers: list[dict[str, Any]] = [
            {"event": t.event, **({"if": t.condition.source} if t.condition else {})}
            for t in self.event_triggers
        ]
        triggers += [
            {
                "cron": t.cron,
                **({"tz": t.tz} if t.tz else {}),
                **({"jitter": t.jitter} if t.jitter else {}),
            }
            for t in self.cron_triggers
        ]
        config: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "retries": self.retries,
            "triggers": triggers,
        }
        if self.cancel_on:
            config["cancel_on"] = [rule.describe() for rule in self.cancel_on]
        if self.timeouts is not None:
            config["timeouts"] = {"start": self.timeouts.start, "finish": self.timeouts.finish}
        if self.flow is not None:
            config.update(self.flow.describe())
        if self.runtime is not None:
            config["runtime"] = self.runtime.describe()
        return config


def _runs_elsewhere(*args: Any) -> Any:
    raise RuntimeError("this function's code is not in this process; a worker that has it runs it")


def function_from_config(config: dict[str, Any]) -> FunctionDef:
    """A function published by another process: it can be matched here, not run."""
    triggers = [
        {("if_" if key == "if" else key): value for key, value in trigger.items()}
        for trigger in config.get("triggers") or []
    ]
    fn = build_function(
        _runs_elsewhere,
        id=config["id"],
        trigger=triggers,
        retries=config.get("retries", 4),
        name=config.get("name"),
        backoff=None,
        cancel_on=config.get("cancel_on"),
        timeouts=config.get("timeouts"),
        **{name: config[name] for name in FLOW_OPTION_NAMES if name in config},
    )
    runtime = config.get("runtime")
    if runtime is not None:
        if runtime.get("type") != "http" or not isinstance(runtime.get("url"), str):
            raise ConfigError(f"function {fn.id!r}: runtime must be {{'type': 'http', 'url': ...}}")
        fn.runtime = HttpRuntime(runtime["url"], runtime.get("app_id"))
    return fn


def build_function(
    handler: Callable[..., Any],
    *,
    id: str,
    trigger: TriggerSpec | Sequence[TriggerSpec] | None,
    retries: int,
    name: str | None,
    backoff: Backoff | None,
    cancel_on: Any = None,
    timeouts: Any = None,
    **flow_options: Any,
) -> FunctionDef:
    if not isinstance(id, str) or not id or len(id) > MAX_FUNCTION_ID:
        got = f"{len(id)} characters" if isinstance(id, str) else repr(id)
        raise ConfigError(
            f"a function id is a non-empty string of at most {MAX_FUNCTION_ID} characters; "
            f"got {got}"
        )
    where = f"function {id!r}"
    if not callable(handler):
        raise ConfigError(f"{where}: the handler must be callable")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ConfigError(f"{where}: retries must be an integer from 0 to {MAX_RETRIES}")
    if backoff is not None and not callable(backoff):
        raise ConfigError(f"{where}: backoff must be a callable attempt -> seconds")
    fn = FunctionDef(
        id=id,
        handler=handler,
        name=name or id,
        retries=retries,
        backoff=backoff,
        is_async=inspect.iscoroutinefunction(handler),
        cancel_on=options.cancel_rules(cancel_on, where),
        timeouts=options.timeouts(timeouts, where),
    )
    unknown = set(flow_options) - set(FLOW_OPTION_NAMES)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
    flow = build_flow(id, where, **flow_options)
    fn.flow = None if flow.empty else flow
    triggers: list[Any]
    if trigger is None:
        triggers = []
    elif isinstance(trigger, (str, EventTrigger, CronTrigger, dict)) or not isinstance(
        trigger, Sequence
    ):
        triggers = [trigger]
    else:
        triggers = list(trigger)
    if len(triggers) > MAX_TRIGGERS:
        raise ConfigError(f"{where}: at most {MAX_TRIGGERS} triggers, got {len(triggers)}")
    for index, item in enumerate(triggers):
        if isinstance(item, str):
            item = EventTrigger(item)
        if isinstance(item, dict):
            kind = CronTrigger if "cron" in item else EventTrigger
            item = options.coerce(kind, item, f"{where} trigger {index}")
        if isinstance(item, EventTrigger):
            fn.event_triggers.append(_compile_event_trigger(item, f"{where} trigger {index}"))
        elif isinstance(item, CronTrigger):
            fn.cron_triggers.append(_check_cron(item, f"{where} trigger {index}"))
        else:
            raise ConfigError(
                f"{where}: trigger {index} must be an event name, stepstone.on_event(...) "
                f"or stepstone.on_cron(...), got {item!r}"
            )
    return fn


def _compile_event_trigger(trigger: EventTrigger, where: str) -> CompiledEventTrigger:
    name = trigger.event
    if not isinstance(name, str) or not name or len(name) > 256:
        raise ConfigError(f"{where}: the event name must be a string of 1-256 characters")
    pattern = None
    if "*" in name:
        pattern = re.compile(".*".join(re.escape(part) for part in name.split("*")))
    condition = Expression(trigger.if_, where=f"{where} if_") if trigger.if_ is not None else None
    return CompiledEventTrigger(name, pattern, condition)


def _check_cron(trigger: CronTrigger, where: str) -> CronTrigger:
    if not isinstance(trigger.cron, str) or not croniter.is_valid(trigger.cron):
        raise ConfigError(f"{where}: {trigger.cron!r} is not a valid cron expression")
    if trigger.tz is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(trigger.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{where}: unknown timezone {trigger.tz!r}") from None
    if trigger.jitter < 0:
        raise ConfigError(f"{where}: jitter must not be negative")
    return trigger
