"""Logging the HTTP side without letting clients fill the disk.

A flood of bad requests, or a descriptor table run full, makes uvicorn and asyncio log one
line (often a traceback) per event: thousands a second. `RateLimit` lets through a few
records of each kind per window, and says how many it dropped when the next one passes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# the loggers clients can make write: uvicorn's, asyncio's (accept errors), and ours
NOISY_LOGGERS = ("uvicorn.error", "asyncio", "stepstone.http")


class RateLimit(logging.Filter):
    """At most `burst` warnings and errors per (logger, message template) every `window`
    seconds; lower levels (the access log at DEBUG) pass untouched."""

    def __init__(
        self,
        burst: int = 10,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        started, passed, dropped = self._seen.get(key, (now, 0, 0))
        if now - started >= self.window:
            started, passed = now, 0
        if passed >= self.burst:
            self._seen[key] = (started, passed, dropped + 1)
            return False
        self._seen[key] = (started, passed + 1, 0)
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like this were not logged)"
        if len(self._seen) > 10_000:  # templates are few; values stay out of the key
            self._seen.clear()
        return True


def limit_noisy_loggers(burst: int = 10, window: float = 60.0) -> RateLimit:
    """Put one RateLimit on each of NOISY_LOGGERS (once per process) and return it."""
    for name in NOISY_LOGGERS:
        for existing in logging.getLogger(name).filters:
            if isinstance(existing, RateLimit):
                return existing
    limit = RateLimit(burst, window)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).addFilter(limit)
    return limit
