"""Durations given as seconds, timedelta or strings like "1h30m", "7d", "250ms"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")

Duration = float | int | timedelta | str


def parse_duration(value: Duration, *, what: str = "duration") -> float:
    """Seconds in `value`; raise ConfigError saying what is wrong."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected seconds, a timedelta or a string like '1h30m'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        pos, seconds = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            raise ConfigError(
                f"{what}: cannot read {value!r}; write it like '30s', '1h30m', '7d' or '250ms'"
            )
    else:
        raise ConfigError(
            f"{what}: expected seconds, a timedelta or a string like '1h30m', "
            f"got {type(value).__name__}"
        )
    if seconds < 0:
        raise ConfigError(f"{what}: must not be negative, got {value!r}")
    return seconds


def to_timestamp(when: datetime | float | int | str) -> float:
    """A point in time as seconds since the epoch (naive datetimes are taken as UTC)."""
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    raise ConfigError(f"expected a datetime, an ISO 8601 string or a timestamp, got {when!r}")


def format_duration(seconds: float) -> str:
    """How long something took, for people: `0.4 ms`, `12 ms`, `1.2 s`, `3 min 5 s`, `2 h`."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if round(seconds * 1000) < 1000:
        return f"{seconds * 1000:.0f} ms"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
