"""Function options: small frozen values, given as dataclasses or as dicts with the same keys.

Each is checked when the function is defined; an invalid one raises ConfigError naming
the function and the option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .durations import Duration, parse_duration
from .errors import ConfigError
from .expressions import Expression

OptionT = TypeVar("OptionT")
MAX_CANCEL_RULES = 5
YEAR = 366 * 86400.0


@dataclass(frozen=True)
class Cancel:
    """Cancel a run when an `event` arrives that matches `if_` (CEL over `event` and `async`)."""

    event: str
    if_: str | None = None
    timeout: Duration | None = None  # the rule lapses this long after the run starts


@dataclass(frozen=True)
class Timeouts:
    """`start`: longest wait from trigger to first execution; `finish`: longest run once started."""

    start: Duration | None = None
    finish: Duration | None = None


def coerce(cls: type[OptionT], value: Any, where: str) -> OptionT:
    """`value` as an instance of the option dataclass `cls` (a dict with its keys works too)."""
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(value) - names
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"expected {', '.join(sorted(names))}"
            )
        try:
            return cls(**value)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(f"{where}: expected stepstone.{cls.__name__}(...) or a dict, got {value!r}")


@dataclass(frozen=True)
class CancelRule:
    event: str
    condition: Expression | None
    timeout: float | None

    def describe(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "if_": self.condition.source if self.condition else None,
            "timeout": self.timeout,
        }


def cancel_rules(value: Any, where: str) -> list[CancelRule]:
    if value is None:
        return []
    items = [value] if isinstance(value, (Cancel, Mapping)) else list(value)
    if len(items) > MAX_CANCEL_RULES:
        raise ConfigError(f"{where}: at most {MAX_CANCEL_RULES} cancel_on rules, got {len(items)}")
    rules = []
    for index, item in enumerate(items):
        here = f"{where} cancel_on[{index}]"
        rule = coerce(Cancel, item, here)
        if not isinstance(rule.event, str) or not rule.event:
            raise ConfigError(f"{here}: 'event' must be an event name")
        condition = None if rule.if_ is None else Expression(rule.if_, where=f"{here} if_")
        timeout = None
        if rule.timeout is not None:
            timeout = parse_duration(rule.timeout, what=f"{here} timeout")
            if not 0 < timeout <= YEAR:
                raise ConfigError(f"{here}: timeout must be more than 0 and at most 1 year")
        rules.append(CancelRule(rule.event, condition, timeout))
    return rules


@dataclass(frozen=True)
class TimeoutLimits:
    start: float | None
    finish: float | None


def timeouts(value: Any, where: str) -> TimeoutLimits | None:
    if value is None:
        return None
    given = coerce(Timeouts, value, f"{where} timeouts")
    out = []
    for name in ("start", "finish"):
        raw = getattr(given, name)
        seconds = None if raw is None else parse_duration(raw, what=f"{where} timeouts.{name}")
        if seconds is not None and not 0 < seconds <= YEAR:
            raise ConfigError(f"{where} timeouts.{name}: must be more than 0 and at most 1 year")
        out.append(seconds)
    return TimeoutLimits(out[0], out[1])


def is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))
