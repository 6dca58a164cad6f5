"""Whether an incoming event matches a wait: its `if_` CEL expression over `event` (the
waiting run's trigger) and `async` (the incoming event). Evaluated by the store inside the
intake transaction, on whichever path stored the event."""

from __future__ import annotations

import threading

from ..expressions import Expression
from ..records import Event
from .base import Wait


class WaitMatcher:
    """Compiles each condition once; safe to call from the store's writer threads."""

    def __init__(self) -> None:
        self._compiled: dict[str, Expression] = {}
        self._lock = threading.Lock()

    def __call__(self, wait: Wait, event: Event) -> bool:
        if wait.condition is None:
            return True
        expression = self._compiled.get(wait.condition)
        if expression is None:
            expression = Expression(wait.condition, where="wait_for_event if_")
            with self._lock:
                self._compiled[wait.condition] = expression
        return expression.matches({"event": wait.trigger_event, "async": event.to_dict()})
