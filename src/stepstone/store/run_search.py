"""Searching runs: event-name patterns in each dialect, and the bounded scan that applies a
filter over trigger events (a CEL expression) page by page."""

from __future__ import annotations

from collections.abc import Callable

from ..records import Event, Run

SCAN_PAGE = 200  # runs read per query while a filter over their events looks for matches
SCAN_MAX = 5000  # runs read by one call at most: then it answers with what it found so far

EventFilter = Callable[[Event], bool]


def glob_pattern(pattern: str) -> str:
    """An event-name pattern (`*` matches any run of characters) for SQLite's GLOB,
    which is case-sensitive, like event names."""
    special = {"?": "[?]", "[": "[[]"}
    return "".join(special.get(c, c) for c in pattern)


def like_pattern(pattern: str) -> str:
    r"""The same for LIKE with ESCAPE '\' (PostgreSQL's LIKE is case-sensitive)."""
    out = []
    for c in pattern:
        if c in "%_\\":
            out.append("\\" + c)
        else:
            out.append("%" if c == "*" else c)
    return "".join(out)


def keep(runs: list[Run], events: dict[str, Event], event_filter: EventFilter) -> list[Run]:
    """The runs whose trigger event (their first) passes `event_filter`."""
    out = []
    for run in runs:
        first = events.get(run.event_ids[0]) if run.event_ids else None
        if first is not None and event_filter(first):
            out.append(run)
    return out
