"""CPU time of processes, from /proc (Linux): a process's own, and a PostgreSQL server's
(its postmaster, every process it started, and the children it has reaped)."""

from __future__ import annotations

import os

from . import sqlconn

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (None: gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """A process's CPU time (user + system); with `children`, that of the children it has
    waited for too."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


class ServerCpu:
    """CPU seconds used so far by a PostgreSQL server: its postmaster (found as the parent
    of a backend of ours), every process it started, and the children it has reaped."""

    def __init__(self, url: str) -> None:
        with sqlconn.connect(url, autocommit=True) as conn:  # read while the backend lives
            backend = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
            fields = _stat(backend)
        self.postmaster = int(fields[1]) if fields else None

    def seconds(self) -> float | None:
        if self.postmaster is None:
            return None
        total = cpu_seconds(self.postmaster, children=True)
        for name in os.listdir("/proc"):
            if name.isdigit():
                fields = _stat(int(name))
                if fields is not None and fields[1] == str(self.postmaster):
                    total += int(fields[11]) / _TICK + int(fields[12]) / _TICK
        return total
