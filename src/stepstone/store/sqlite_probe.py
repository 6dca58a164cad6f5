"""How an idle SQLite worker learns that another process committed: `PRAGMA data_version`.

The version, read on a connection of the caller's, changes when any other connection
commits changes, this process's writer included; reading it touches only the WAL index
in shared memory (a few microseconds), so it may run on the event loop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

UNSURE_EVERY = 0.05  # seconds: see data_version_probe


def data_version_probe(
    conn: sqlite3.Connection, own_changes: Callable[[], int]
) -> Callable[[], bool]:
    """A probe that says whether another process committed since it was last asked.

    `own_changes()` counts this process's commits that changed rows. A change is reported
    at once when there were none of ours meanwhile; one that came with our own commits
    may hide a foreign one, so it is reported too, but at most every UNSURE_EVERY
    seconds: a busy worker's own checkpoints cost a handful of extra claims per second,
    and no foreign commit waits for the regular poll."""

    def version() -> object:
        try:
            return conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return None

    last = [own_changes(), version()]
    unsure: list[float | None] = [None]  # when an unreported unsure change was seen

    def probe() -> bool:
        commits = own_changes()  # read before the version: a race errs towards True
        current = version()
        changed, ours = current != last[1], commits != last[0]
        last[0], last[1] = commits, current
        if changed and not ours:
            unsure[0] = None
            return True
        now = time.monotonic()
        if changed and unsure[0] is None:
            unsure[0] = now
        if unsure[0] is not None and now - unsure[0] >= UNSURE_EVERY:
            unsure[0] = None
            return True
        return False

    return probe
