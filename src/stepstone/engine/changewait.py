"""An idle worker's wait for another process's commit (SQLite: no LISTEN/NOTIFY).

A timer asks the store's probe every `change_poll` seconds. Where the store can watch
its files (store/filewatch.py), a write wakes the wait at once; the commit becomes
visible only after the write's fsync, so the probe is then asked every FOLLOW_UP seconds
a few times.

One notice is all a wait needs from the watch: a commit writes its WAL file many times
(a header and a page per frame), and each write, noticed, would wake the event loop for
nothing, taking CPU and the GIL from the writer that is committing. So the wait stops
listening at the first notice and listens again when its timer next asks the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    loop = asyncio.get_running_loop()
    handle: asyncio.TimerHandle | None = None
    follow_ups = 0
    listening = False

    def listen() -> None:
        nonlocal listening
        if watch is None or listening or watch.writing_here() or busy():
            return
        watch.drain()  # writes from before: the probe asked next sees their commits
        loop.add_reader(watch.fileno(), written)
        listening = True

    def deaf() -> None:
        nonlocal listening
        if watch is not None and listening:
            loop.remove_reader(watch.fileno())
            listening = False

    def check() -> None:
        nonlocal handle, follow_ups
        if not follow_ups:
            listen()  # before the probe: a write after it is noticed
        if probe():
            wake.set()
            return
        if follow_ups:
            follow_ups -= 1
            handle = loop.call_later(FOLLOW_UP, check)
        else:
            handle = loop.call_later(change_poll, check)

    def written() -> None:
        nonlocal follow_ups
        assert watch is not None
        deaf()
        if watch.writing_here() or busy():
            # most likely our own write (a send of this process, a run handed to this
            # worker since the wait began): the timer's next tick listens again
            return
        if handle is not None:
            handle.cancel()
        follow_ups = FOLLOW_UPS
        check()

    # asked now, too: it takes in this worker's own commits since it was last asked (a
    # run that just ended), so that the next foreign one is reported at once
    check()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)
    finally:
        if handle is not None:
            handle.cancel()
        deaf()
