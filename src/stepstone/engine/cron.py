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
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def run(self) -> None:
        local = self.runtime.registry.local.values()
        jobs = [(fn, t) for fn in local for t in fn.cron_triggers]
        if not jobs:
            return
        await asyncio.gather(*(self._loop(fn, trigger) for fn, trigger in jobs))

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
