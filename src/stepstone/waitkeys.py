"""The index of waits: an `if_` of the form `event.a.b == async.c.d` is looked up, not scanned.

A wait whose condition compares a field of its trigger event with a field of the incoming
event stores the incoming side's path and, as a key, the trigger's value at its own path.
An incoming event then reads only the waits whose key equals its own value at that path,
however many runs wait for the same event name. The CEL expression still decides on
those candidates, so the index only ever narrows the search: numerically equal values
share a key (CEL finds 1 == 1.0), values of different kinds never do.
"""

from __future__ import annotations

import re
from typing import Any

_SIDE = r"(event|async)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
_EQUALS = re.compile(rf"^\s*{_SIDE}\s*==\s*{_SIDE}\s*$")


def index_of(condition: str | None, trigger: dict[str, Any]) -> tuple[str, str] | None:
    """(path on the incoming event, key) when `condition` is indexable, else None."""
    if condition is None:
        return None
    found = _EQUALS.match(condition)
    if found is None:
        return None
    left, left_path, right, right_path = found.groups()
    if {left, right} != {"event", "async"}:
        return None
    trigger_path, async_path = (
        (left_path, right_path) if left == "event" else (right_path, left_path)
    )
    key = key_at(trigger, trigger_path)
    if key is None:
        return None  # a missing or composite value: the wait is matched by scanning
    return async_path.strip("."), key


def key_at(value: Any, path: str) -> str | None:
    """The key of the scalar at dotted `path`; None when it is missing or not a scalar."""
    for part in path.strip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return _key(value)


def _key(value: Any) -> str | None:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, int):
        return f"n:{value}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return f"n:{int(value)}" if value.is_integer() else f"n:{value!r}"
    if isinstance(value, str):
        return "s:" + value
    return None
