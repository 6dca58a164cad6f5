"""How long finished runs are kept: a setting of the App (`retention=`) and the CLI
(`--retention`, `stepstone prune --older-than`), read here so that every path refuses the
same values."""

from __future__ import annotations

from .durations import Duration, parse_duration
from .errors import ConfigError

DAY = 86400.0
DEFAULT_RETENTION = 7 * DAY
# event-id dedup, idempotency keys and rate limits remember 24 hours: a finished run and
# its events must outlive that, or a repeated event would start a run again
MIN_RETENTION = DAY


def retention_seconds(value: Duration | None, *, what: str = "retention") -> float:
    """Seconds to keep finished runs; 0 keeps everything; None is the default (7 days)."""
    if value is None:
        return DEFAULT_RETENTION
    seconds = parse_duration(value, what=what)
    if seconds < 0:
        raise ConfigError(f"{what} must be 0 (keep everything) or a duration of 24h or more")
    if 0 < seconds < MIN_RETENTION:
        raise ConfigError(
            f"{what} is {seconds:g}s: it must be 24h or more, the time event ids, "
            "idempotency keys and rate limits are remembered (or 0 to keep everything)"
        )
    return seconds
