"""Under overload, a worker's runs already started come before runs not started yet.

A claim always takes due wake-ups before new runs, but that alone cannot keep timers on
time in a burst: the runs a worker starts now are the wake-ups it must serve a sleep
later, and when it starts them faster than it can serve their wake-ups (a wake-up ends
its run, which costs more than starting it), those wake-ups pile up and come late. So
while the worker is overloaded (its last claim got all it asked for) and runs it put to
sleep wake within `horizon` seconds, it starts new runs at most at `share` of the rate
it can finish invocations at. The work is the same; new runs wait a little longer to
start, and the runs already going keep their time.

That rate is measured in invocations per second of the process's CPU time, so it is
known at any load: a worker that keeps up (its claims get less than they ask for) is
never paced, and one that is paced does not mistake its own pacing for slowness.

While overloaded, its claims also take wake-ups further ahead of their time (see
`look_ahead`), so that a wake-up does not wait for a free slot.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

WINDOW = 0.1  # seconds between measurements of the cost of an invocation
MIN_SAMPLE = 20  # invocations a measurement needs (fewer: idle polling would dominate)
COMPACT_AT = 1024  # heap entries past which stale ones are dropped
# seconds: how far ahead of their time an overloaded worker's claims take wake-ups
OVERLOADED_AHEAD = 0.25


class StartPacer:
    def __init__(
        self,
        now: float,
        *,
        horizon: float = 2.0,
        share: float = 0.9,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.horizon = horizon
        self.share = share
        # the runs this worker put to sleep for at most `horizon`: when they wake, as a
        # dict and a heap (an entry whose run was claimed since is dropped when reached)
        self._waking: dict[str, float] = {}
        self._wakes: list[tuple[float, str]] = []
        self._rate: float | None = None  # invocations finished per CPU second
        self._finished = 0  # since the last measurement
        self._measured_at = now
        self._cpu_clock = cpu  # the process's CPU time: what the rate is measured in
        self._cpu = cpu()
        self._overloaded = False
        self._pacing = False
        self._tokens = 0.0  # new runs it may start now, while pacing
        self._last = now

    @property
    def overloaded(self) -> bool:
        """Its last claim got all it asked for: more may be due than it takes."""
        return self._overloaded

    def look_ahead(self, usual: float) -> float:
        """How far ahead of their time the next claim takes wake-ups: `usual`, but at
        least OVERLOADED_AHEAD while overloaded. A claim then waits for a free slot and
        behind the writer's queue, tens to hundreds of milliseconds, and a wake-up
        claimed only once due comes that late; one claimed ahead is held (it takes no
        slot) and starts on the worker's own timer, at its time."""
        return max(usual, OVERLOADED_AHEAD) if self._overloaded else usual

    def suspended(self, run_id: str, until: float, now: float) -> None:
        """A run of this worker sleeps or waits until `until`."""
        if until - now > self.horizon:
            return
        self._waking[run_id] = until
        heapq.heappush(self._wakes, (until, run_id))
        if len(self._wakes) > 2 * max(COMPACT_AT, len(self._waking)):
            self._compact(now)

    def _compact(self, now: float) -> None:
        """Drops the entries of runs claimed since and of wake-ups long past: a worker
        that is never paced never reads the heap, which would otherwise only grow."""
        self._waking = {r: u for r, u in self._waking.items() if u >= now - self.horizon}
        self._wakes = [(until, run_id) for run_id, until in self._waking.items()]
        heapq.heapify(self._wakes)

    def resumed(self, run_id: str) -> None:
        """A run was claimed again (by this worker)."""
        self._waking.pop(run_id, None)

    def finished(self) -> None:
        """An invocation ended (its run completed, failed, or was suspended)."""
        self._finished += 1

    def allowance(self, limit: int, now: float) -> int | None:
        """How many new runs the next claim may start; None: as many as it asks for."""
        self._measure(now)
        elapsed, self._last = max(0.0, now - self._last), now
        if not self._overloaded or self._rate is None or not self._wakes_soon(now):
            self._pacing = False
            return None
        if not self._pacing:  # pacing begins: with no new run owed
            self._pacing, self._tokens, elapsed = True, 0.0, 0.0
        self._tokens = min(float(limit), self._tokens + self.share * self._rate * elapsed)
        return int(self._tokens + 1e-9)  # (0.1 + 0.2 is 0.30000000000000004)

    def claimed(self, asked: int, got: int, started: int, allowed: int | None) -> None:
        """A claim asked for `asked` runs and got `got`, `started` of them new ones, when
        it was allowed `allowed` new ones (None: any number)."""
        if got >= asked:
            self._overloaded = True
        elif allowed is None or started < allowed:
            self._overloaded = False  # it took all that was due: it keeps up
        if allowed is not None:
            self._tokens = max(0.0, self._tokens - started)

    def delay(self, limit: int) -> float:
        """Seconds until a claim may start a few more new runs, while pacing (not one:
        a claim per new run would cost more than the runs)."""
        if self._rate is None or self._rate <= 0:
            return WINDOW
        wanted = min(float(limit), 10.0)
        return min(WINDOW, max(0.0, (wanted - self._tokens) / (self.share * self._rate)))

    def _measure(self, now: float) -> None:
        if now - self._measured_at < WINDOW:
            return
        if self._finished < MIN_SAMPLE:
            if now - self._measured_at > 10 * WINDOW:  # mostly idle: start over
                self._finished, self._measured_at, self._cpu = 0, now, self._cpu_clock()
            return
        cpu = self._cpu_clock()
        spent = cpu - self._cpu
        if spent > 0:
            sample = self._finished / spent
            self._rate = sample if self._rate is None else 0.5 * (self._rate + sample)
        self._finished, self._measured_at, self._cpu = 0, now, cpu

    def _wakes_soon(self, now: float) -> bool:
        wakes, waking = self._wakes, self._waking
        while wakes:
            until, run_id = wakes[0]
            # served here, or long past (so another worker served it): forget it
            if waking.get(run_id) != until or until < now - self.horizon:
                heapq.heappop(wakes)
                if waking.get(run_id) == until:
                    del waking[run_id]
                continue
            return until <= now + self.horizon
        return False
