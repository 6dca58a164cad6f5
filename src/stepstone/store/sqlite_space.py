"""Giving a SQLite file's free pages back to the file system after a prune, a little at
a time, so that the writers get the write lock between two steps."""

from __future__ import annotations

import logging
import sqlite3
import time

log = logging.getLogger("stepstone.store")

VACUUM_PAGES = 65536  # pages a prune gives back at most (256 MiB of 4 KiB pages) ...
VACUUM_STEP = 256  # ... this many a write (1 MiB): a few milliseconds of the write lock
VACUUM_PAUSE = 0.02  # seconds between two of those writes: the writers' turn


def give_space_back(conn: sqlite3.Connection) -> None:
    """VACUUM_STEP pages a write, VACUUM_PAUSE seconds apart, while any are free (in a
    file created with auto_vacuum=incremental; an older one keeps them for new rows)."""
    more = _free_pages(conn)
    for _ in range(VACUUM_PAGES // VACUUM_STEP):
        if not more:
            return
        more = _vacuum_step(conn)
        time.sleep(VACUUM_PAUSE)


def _free_pages(conn: sqlite3.Connection) -> bool:
    """Whether the file has free pages to give back."""
    try:
        return bool(conn.execute("PRAGMA freelist_count").fetchone()[0])
    except sqlite3.Error as exc:  # busy: the next prune gives it back
        log.debug("incremental vacuum skipped: %s", exc)
        return False


def _vacuum_step(conn: sqlite3.Connection) -> bool:
    """Gives up to VACUUM_STEP free pages back; True while more are free."""
    try:
        conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_STEP});")
    except sqlite3.Error as exc:  # busy: the next prune gives it back
        log.debug("incremental vacuum skipped: %s", exc)
        return False
    return _free_pages(conn)
