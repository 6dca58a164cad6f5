"""Retry policy: pure functions of the error, the attempt and the clock."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .durations import to_timestamp
from .errors import NonRetriableError, RetryAfterError, StepError

Backoff = Callable[[int], "float | timedelta"]

DEFAULT_SCHEDULE = (15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 3600.0, 7200.0)
MAX_JITTER = 30.0
RETRY_AFTER_MIN = 1.0
RETRY_AFTER_MAX = 86400.0


def default_backoff(attempt: int) -> float:
    """Seconds before retry number `attempt + 1`: the schedule plus 0-30 s of jitter."""
    base = DEFAULT_SCHEDULE[min(attempt, len(DEFAULT_SCHEDULE) - 1)]
    return base + random.uniform(0.0, MAX_JITTER)


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    at: float | None = None  # when the next attempt may start


def decide_retry(
    exc: BaseException,
    *,
    attempt: int,
    max_attempts: int,
    now: float,
    backoff: Backoff,
    retry_after_min: float = RETRY_AFTER_MIN,
) -> RetryDecision:
    """Whether to try again after `exc` ended attempt number `attempt` (0-based), and when."""
    if isinstance(exc, (NonRetriableError, StepError)) or attempt + 1 >= max_attempts:
        return RetryDecision(retry=False)
    if isinstance(exc, RetryAfterError):
        return RetryDecision(True, now + _retry_after_delay(exc, now, retry_after_min))
    delay = backoff(attempt)
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    return RetryDecision(True, now + max(0.0, seconds))


def _retry_after_delay(exc: RetryAfterError, now: float, floor: float) -> float:
    value = exc.retry_after
    if isinstance(value, datetime):
        delay = to_timestamp(value) - now
    elif isinstance(value, timedelta):
        delay = value.total_seconds()
    else:
        delay = float(value)
    return min(max(delay, floor), RETRY_AFTER_MAX)
