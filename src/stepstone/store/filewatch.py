"""A file's writes, told by the kernel: Linux's inotify, through libc.

An idle SQLite worker learns of another process's commit through `PRAGMA data_version`,
asked on a timer; every commit first writes the database's WAL file, so a watch on that
file tells the worker to ask at once. The watch only says "someone is writing": the
commit becomes visible a moment later, after its fsync, which is why the worker asks
again a few times after each write it is told of (engine/worker.py).

The standard library has no inotify; the three libc calls it takes are made with ctypes.
Elsewhere (not Linux, no libc, or a kernel without inotify) there is no watch, and the
timer alone finds foreign commits, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable

log = logging.getLogger("stepstone.store")

IN_MODIFY = 0x00000002
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


class FileWatch:
    """A non-blocking file descriptor that becomes readable when the file is written to.
    Hand `fileno()` to the event loop's `add_reader`; `drain()` in the callback."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        # set by the store: True while this process's own writer may be the one writing,
        # when a write tells nothing (the probe learns of our commits from the writer)
        self.writing_here: Callable[[], bool] = lambda: False

    def fileno(self) -> int:
        return self._fd

    def drain(self) -> None:
        """Reads the events waiting (their content does not matter: a write happened)."""
        try:
            while os.read(self._fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


def watch_writes(path: str) -> FileWatch | None:
    """A watch on writes to `path`, or None where the kernel offers none (or the file
    does not exist): the caller then polls."""
    libc = _libc()
    if libc is None:
        return None
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        log.debug("no inotify: %s", os.strerror(ctypes.get_errno()))
        return None
    if libc.inotify_add_watch(fd, os.fsencode(path), IN_MODIFY) < 0:
        log.debug("cannot watch %s: %s", path, os.strerror(ctypes.get_errno()))
        os.close(fd)
        return None
    return FileWatch(fd)
