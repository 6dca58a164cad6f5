"""Cron triggers: every worker computes the ticks; the event id of a tick makes it one run."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from ..function import CronTrigger, FunctionDef
from ..runtime import Runtime

log = logging.getLogger("stepstone.cron")


def next_tick(trigger: CronTrigger, after: float) -> float:
    """The first tick of `trigger` strictly after `after` (epoch seconds)."""
    zone = ZoneInfo(trigger.tz) if trigger.tz else UTC
    start = datetime.fromtimestamp(after, zone)
    return float(croniter(trigger.cron, start).get_next(float))


class CronScheduler:
    """Fires the cron triggers of the functions this worker can run: its own, and those of
    synced SDK apps (which come and go as apps sync: the set is looked at again every
    `rescan` seconds)."""

    def __init__(self, runtime: Runtime, *, rescan: float = 2.0) -> None:
        self.runtime = runtime
        self.rescan = rescan
        self._loops: dict[tuple[str, CronTrigger], asyncio.Task[None]] = {}

    def _wanted(self) -> dict[tuple[str, CronTrigger], FunctionDef]:
        registry = self.runtime.registry
        runnable = [fn for fn in registry.all() if fn.id in registry.local or fn.runtime]
        return {(fn.id, t): fn for fn in runnable for t in fn.cron_triggers}

    async def run(self) -> None:
        try:
            while True:
                wanted = self._wanted()
                for key in [k for k in self._loops if k not in wanted]:
                    self._loops.pop(key).cancel()  # the function is gone, or changed
                for key, fn in wanted.items():
                    if key not in self._loops:
                        self._loops[key] = asyncio.create_task(self._loop(fn, key[1]))
                await asyncio.sleep(self.rescan)
        finally:
            for task in self._loops.values():
                task.cancel()
            await asyncio.gather(*self._loops.values(), return_exceptions=True)
            self._loops.clear()

    async def _loop(self, fn: FunctionDef, trigger: CronTrigger) -> None:
        clock = self.runtime.clock
        tick = next_tick(trigger, clock.now())
        while True:
            await clock.sleep(tick - clock.now())
            if clock.now() < tick:
                continue
            try:
                await self.fire(fn, trigger, tick)
            except Exception:
                log.exception(
                    "cron %s of %s: could not start the run; trying again", trigger.cron, fn.id
                )
                await asyncio.sleep(1.0)
                continue
            tick = next_tick(trigger, tick)

    async def fire(self, fn: FunctionDef, trigger: CronTrigger, tick: float) -> None:
        """Create the run of one tick; any number of workers may call this for the same tick."""
        await self.runtime.intake.store([self.runtime.planner.cron_event(fn, trigger, tick)])
