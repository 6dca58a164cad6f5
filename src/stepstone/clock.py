"""The clock the engine reads time from; stepstone.testing supplies one that tests move."""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Wall-clock time in seconds since the epoch."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
