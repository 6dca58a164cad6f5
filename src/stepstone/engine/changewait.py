"""An idle worker's wait for another process's commit (SQLite: no LISTEN/NOTIFY).

A timer asks the store's probe every `change_poll` seconds. Where the store can watch
its files (store/filewatch.py), a write wakes the wait at once; the commit becomes
visible only after the write's fsync, so the probe is then asked every FOLLOW_UP seconds
a few times. Those follow-ups are timed by a thread: asyncio's timers wait a whole
millisecond at least (epoll takes its timeout in milliseconds, rounded up), several
times a fsync here.

One notice is all a wait needs from the watch: a commit writes its WAL file many times
(a header and a page per frame), and each write, noticed, would wake the event loop for
nothing, taking CPU and the GIL from the writer that is committing. So the wait stops
listening at the first notice and listens again when its timer next asks the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from ..store.filewatch import FileWatch

# after a write another process is making, the probe is asked this often (seconds) ...
FOLLOW_UP = 0.0002
FOLLOW_UPS = 25  # ... this many times (5 ms: a slow disk's fsync), then at change_poll


async def wait_for_change(
    wake: asyncio.Event,
    probe: Callable[[], bool],
    watch: FileWatch | None,
    *,
    change_poll: float,
    timeout: float,
    busy: Callable[[], bool],
) -> None:
    """Until `wake` is set, `timeout` passes, or the probe says another process
    committed (then `wake` is set). `busy()`: this worker has runs in flight, whose own
    commits are most of the writes the watch would tell of; the timer finds the rest."""
    waiting = _Wait(asyncio.get_running_loop(), wake, probe, watch, change_poll, busy)
    # asked now, too: it takes in this worker's own commits since it was last asked (a
    # run that just ended), so that the next foreign one is reported at once
    waiting.check()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)
    finally:
        waiting.close()


class _Wait:
    """One wait's timer and watch (a class, not closures: closures that schedule
    themselves are reference cycles, left to the cyclic collector)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        wake: asyncio.Event,
        probe: Callable[[], bool],
        watch: FileWatch | None,
        change_poll: float,
        busy: Callable[[], bool],
    ) -> None:
        self.loop, self.wake, self.probe, self.watch = loop, wake, probe, watch
        self.change_poll, self.busy = change_poll, busy
        self.handle: asyncio.TimerHandle | None = None
        self.follow_ups = 0
        self.ticker: _Ticker | None = None  # the follow-ups after a notice, while they last
        self.listening = False

    def listen(self) -> None:
        watch = self.watch
        if watch is None or self.listening or watch.writing_here() or self.busy():
            return
        watch.drain()  # writes from before: the probe asked next sees their commits
        self.loop.add_reader(watch.fileno(), self.written)
        self.listening = True

    def deaf(self) -> None:
        if self.watch is not None and self.listening:
            self.loop.remove_reader(self.watch.fileno())
            self.listening = False

    def check(self) -> None:
        if not self.follow_ups:
            self.listen()  # before the probe: a write after it is noticed
        if self.probe():
            self.wake.set()
            return
        self.handle = self.loop.call_later(self.change_poll, self.check)

    def follow_up(self) -> None:
        """A tick of the ticker (on the loop)."""
        if self.ticker is None:
            return  # stopped since the tick was sent
        self.follow_ups -= 1
        if self.probe():
            self._stop_ticker()
            self.wake.set()
        elif self.follow_ups <= 0:
            self._stop_ticker()
            self.check()  # listening again, and the timer

    def written(self) -> None:
        assert self.watch is not None
        self.deaf()
        if self.watch.writing_here() or self.busy():
            # most likely our own write (a send of this process, a run handed to this
            # worker since the wait began): the timer's next tick listens again
            return
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.probe():
            self.wake.set()
            return
        self._stop_ticker()
        self.follow_ups = FOLLOW_UPS
        self.ticker = _Ticker(self.loop, self.follow_up, FOLLOW_UPS)
        self.ticker.start()

    def _stop_ticker(self) -> None:
        ticker, self.ticker = self.ticker, None
        if ticker is not None:
            ticker.stopped.set()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self._stop_ticker()
        self.deaf()


class _Ticker(threading.Thread):
    """Calls `tick` on the loop every FOLLOW_UP seconds, `count` times, until stopped."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: Callable[[], None], count: int):
        super().__init__(name="stepstone-follow-up", daemon=True)
        self.loop, self.tick, self.count = loop, tick, count
        self.stopped = threading.Event()

    def run(self) -> None:
        for _ in range(self.count):
            if self.stopped.wait(FOLLOW_UP):
                return
            try:
                self.loop.call_soon_threadsafe(self.tick)
            except RuntimeError:
                return  # the loop has closed
