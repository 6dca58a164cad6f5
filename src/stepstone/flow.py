"""Flow control options: checked when a function is defined, turned into keys per run.

Every option's key is a CEL expression over `event`; `FlowOptions.plan` evaluates them for
one event, giving the store plain strings and numbers (`FlowPlan`) to decide with, inside
its transactions, so each limit holds however many workers share the database.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from .durations import Duration, parse_duration
from .errors import ConfigError
from .expressions import Expression
from .options import coerce
from .store.base import FlowPlan

log = logging.getLogger("stepstone.flow")
DAY = 86400.0
SCOPES = ("fn", "env", "account")


@dataclass(frozen=True)
class Concurrency:
    """At most `limit` runs of this function execute at once (per `key` value)."""

    limit: int
    key: str | None = None
    scope: str = "fn"  # "fn": per function; "env"/"account": shared by every function using the key


@dataclass(frozen=True)
class Throttle:
    """At most `limit` runs start per `period` (per key), `burst` at once; others wait."""

    limit: int
    period: Duration
    burst: int = 1
    key: str | None = None


@dataclass(frozen=True)
class RateLimit:
    """At most `limit` runs per `period` (per key); the others are skipped."""

    limit: int
    period: Duration
    key: str | None = None


@dataclass(frozen=True)
class Debounce:
    """Run `period` after the last matching event, with that event; `timeout` caps the wait."""

    period: Duration
    key: str | None = None
    timeout: Duration | None = None


@dataclass(frozen=True)
class Batch:
    """One run for up to `max_size` events, or for what came within `timeout`."""

    max_size: int = 100
    timeout: Duration = 60
    key: str | None = None


@dataclass(frozen=True)
class Priority:
    """`run`: CEL giving seconds (-600..600); positive runs go ahead, negative ones wait."""

    run: str


@dataclass(frozen=True)
class Singleton:
    """At most one active run per key: `skip` drops a new run, `cancel` cancels the old one."""

    key: str | None = None
    mode: str = "skip"


def _int(value: Any, low: int, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where} must be an integer from {low} to {high}, got {value!r}")
    return value


def _seconds(value: Any, low: float, high: float, where: str) -> float:
    seconds = parse_duration(value, what=where)
    if not low <= seconds <= high:
        raise ConfigError(f"{where} must be from {low:g} s to {high:g} s, got {value!r}")
    return seconds


def _key(source: str | None, where: str) -> Expression | None:
    return None if source is None else Expression(source, where=where)


@dataclass(frozen=True)
class _ConcurrencyRule:
    limit: int
    key: Expression | None
    scope: str


@dataclass(frozen=True)
class FlowOptions:
    """A function's flow control, validated, with compiled key expressions."""

    function_id: str
    concurrency: tuple[_ConcurrencyRule, ...] = ()
    throttle: tuple[int, float, int, Expression | None] | None = None
    rate_limit: tuple[int, float, Expression | None] | None = None
    debounce: tuple[float, float | None, Expression | None] | None = None
    batch: tuple[int, float, Expression | None] | None = None
    priority: Expression | None = None
    idempotency: Expression | None = None
    singleton: tuple[str, Expression | None] | None = None

    @property
    def empty(self) -> bool:
        return self == FlowOptions(self.function_id)

    def plan(self, event: dict[str, Any]) -> FlowPlan:
        """The keys and numbers the store needs to apply these options to one run."""
        fid = self.function_id
        variables = {"event": event}

        def key(expression: Expression | None) -> str:
            if expression is None:
                return ""
            try:
                value = expression.evaluate(variables)
            except (LookupError, ValueError, TypeError, RuntimeError) as exc:
                log.warning(
                    "function %s: key %s failed (%s); using ''", fid, expression.source, exc
                )
                return ""
            return value if isinstance(value, str) else json.dumps(value, default=str)

        concurrency = tuple(
            (f"c:{fid if rule.scope == 'fn' else '*'}:{key(rule.key)}", rule.limit)
            for rule in self.concurrency
        )
        priority = 0
        if self.priority is not None:
            try:
                raw = self.priority.evaluate(variables)
                priority = max(-600, min(600, int(raw)))
            except (LookupError, ValueError, TypeError, RuntimeError):
                priority = 0
        return FlowPlan(
            priority=priority,
            concurrency=concurrency,
            throttle=None
            if self.throttle is None
            else (f"t:{fid}:{key(self.throttle[3])}", *self.throttle[:3]),
            rate_limit=None
            if self.rate_limit is None
            else (f"r:{fid}:{key(self.rate_limit[2])}", *self.rate_limit[:2]),
            debounce=None
            if self.debounce is None
            else (f"d:{fid}:{key(self.debounce[2])}", *self.debounce[:2]),
            batch=None
            if self.batch is None
            else (f"b:{fid}:{key(self.batch[2])}", *self.batch[:2]),
            idempotency=None if self.idempotency is None else f"i:{fid}:{key(self.idempotency)}",
            singleton=None
            if self.singleton is None
            else (f"s:{fid}:{key(self.singleton[1])}", self.singleton[0]),
        )

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        src = _source
        if self.concurrency:
            out["concurrency"] = [
                {"limit": r.limit, "key": src(r.key), "scope": r.scope} for r in self.concurrency
            ]
        if self.throttle:
            limit, period, burst, k = self.throttle
            out["throttle"] = {"limit": limit, "period": period, "burst": burst, "key": src(k)}
        if self.rate_limit:
            limit, period, k = self.rate_limit
            out["rate_limit"] = {"limit": limit, "period": period, "key": src(k)}
        if self.debounce:
            period, timeout, k = self.debounce
            out["debounce"] = {"period": period, "timeout": timeout, "key": src(k)}
        if self.batch:
            size, timeout, k = self.batch
            out["batch_events"] = {"max_size": size, "timeout": timeout, "key": src(k)}
        if self.priority:
            out["priority"] = {"run": self.priority.source}
        if self.idempotency:
            out["idempotency"] = self.idempotency.source
        if self.singleton:
            out["singleton"] = {"mode": self.singleton[0], "key": src(self.singleton[1])}
        return out


def _source(expression: Expression | None) -> str | None:
    return None if expression is None else expression.source


def build_flow(function_id: str, where: str, **given: Any) -> FlowOptions:
    """Validate the flow-control options of one function."""
    concurrency: list[_ConcurrencyRule] = []
    value = given.get("concurrency")
    if value is not None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [Concurrency(value)]
        elif isinstance(value, (Concurrency, dict)):
            value = [value]
        items = list(value)
        if len(items) > 2:
            raise ConfigError(f"{where}: at most 2 concurrency limits, got {len(items)}")
        for index, item in enumerate(items):
            here = f"{where} concurrency[{index}]"
            if isinstance(item, int) and not isinstance(item, bool):
                item = Concurrency(item)
            rule = coerce(Concurrency, item, here)
            if rule.scope not in SCOPES:
                raise ConfigError(f"{here}.scope must be one of {', '.join(SCOPES)}")
            if rule.scope != "fn" and rule.key is None:
                raise ConfigError(f"{here}: scope {rule.scope!r} needs a key")
            concurrency.append(
                _ConcurrencyRule(
                    _int(rule.limit, 1, 100_000, f"{here}.limit"),
                    _key(rule.key, f"{here}.key"),
                    rule.scope,
                )
            )
    throttle = None
    if given.get("throttle") is not None:
        here = f"{where} throttle"
        t = coerce(Throttle, given["throttle"], here)
        throttle = (
            _int(t.limit, 1, 100_000, f"{here}.limit"),
            _seconds(t.period, 1, 7 * DAY, f"{here}.period"),
            _int(t.burst, 1, 100_000, f"{here}.burst"),
            _key(t.key, f"{here}.key"),
        )
    rate_limit = None
    if given.get("rate_limit") is not None:
        here = f"{where} rate_limit"
        r = coerce(RateLimit, given["rate_limit"], here)
        rate_limit = (
            _int(r.limit, 1, 100_000, f"{here}.limit"),
            _seconds(r.period, 1, DAY, f"{here}.period"),
            _key(r.key, f"{here}.key"),
        )
    debounce = None
    if given.get("debounce") is not None:
        here = f"{where} debounce"
        d = coerce(Debounce, given["debounce"], here)
        period = _seconds(d.period, 1, 7 * DAY, f"{here}.period")
        timeout = None if d.timeout is None else _seconds(d.timeout, 1, 7 * DAY, f"{here}.timeout")
        debounce = (period, timeout, _key(d.key, f"{here}.key"))
    batch = None
    if given.get("batch_events") is not None:
        here = f"{where} batch_events"
        b = coerce(Batch, given["batch_events"], here)
        batch = (
            _int(b.max_size, 1, 1000, f"{here}.max_size"),
            _seconds(b.timeout, 1, 60, f"{here}.timeout"),
            _key(b.key, f"{here}.key"),
        )
    priority = None
    if given.get("priority") is not None:
        here = f"{where} priority"
        p = coerce(Priority, given["priority"], here)
        priority = Expression(p.run, where=f"{here}.run")
    idempotency = None
    if given.get("idempotency") is not None:
        idempotency = Expression(given["idempotency"], where=f"{where} idempotency")
    singleton = None
    if given.get("singleton") is not None:
        here = f"{where} singleton"
        s = coerce(Singleton, given["singleton"], here)
        if s.mode not in ("skip", "cancel"):
            raise ConfigError(f"{here}.mode must be 'skip' or 'cancel', got {s.mode!r}")
        singleton = (s.mode, _key(s.key, f"{here}.key"))
    if debounce and batch:
        raise ConfigError(f"{where}: debounce and batch_events cannot be combined")
    return FlowOptions(
        function_id,
        tuple(concurrency),
        throttle,
        rate_limit,
        debounce,
        batch,
        priority,
        idempotency,
        singleton,
    )


FLOW_OPTION_NAMES = (
    "concurrency",
    "throttle",
    "rate_limit",
    "debounce",
    "batch_events",
    "priority",
    "idempotency",
    "singleton",
)
