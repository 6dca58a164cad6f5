"""Cron triggers: every worker computes the ticks; the event id of a tick makes it one run."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from croniter import croniter

from ..store import NewEvent

if TYPE_CHECKING:
    from ..app import App
    from ..function import CronTrigger, FunctionDef

log = logging.getLogger("stepstone.cron")
CRON_EVENT = "stepstone/scheduled.timer"


def next_tick(trigger: CronTrigger, after: float) -> float:
    """The first tick of `trigger` strictly after `after` (epoch seconds)."""
    zone = ZoneInfo(trigger.tz) if trigger.tz else UTC
    start = datetime.fromtimestamp(after, zone)
    return float(croniter(trigger.cron, start).get_next(float))


class CronScheduler:
    def __init__(self, app: App) -> None:
        self.app = app

    async def run(self) -> None:
        jobs = [(fn, t) for fn in self.app.functions.values() for t in fn.cron_triggers]
        if not jobs:
            return
        await asyncio.gather(*(self._loop(fn, trigger) for fn, trigger in jobs))

    async def _loop(self, fn: FunctionDef, trigger: CronTrigger) -> None:
        clock = self.app.clock
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
        raw = {
            "name": CRON_EVENT,
            # the id makes the tick's event, and so its run, unique across all workers
            "id": f"cron:{fn.id}:{trigger.cron}:{int(tick)}",
            "data": {"cron": trigger.cron, "function_id": fn.id, "tick": tick},
            "ts": int(tick * 1000),
        }
        prepared = self.app.prepare_events(raw, internal=True)[0]
        start = tick + (random.uniform(0, trigger.jitter) if trigger.jitter else 0.0)
        run = self.app.new_run(fn, prepared.event, tick, available_at=start)
        store = await self.app.store()
        await store.ingest([NewEvent(prepared.event, prepared.data_json, tick, [run])])
        self.app.wake_workers()
