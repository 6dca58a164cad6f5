"""In-process signals between senders and workers: "work may be due" (wake-ups), "stop
this run" (cancels), and the hand-off of a send's new runs to an idle worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .store import Claim, Handoff


class Taker(Protocol):
    """A worker that may take the runs a send of its process creates (Handoff)."""

    def handoff(self) -> Handoff | None: ...

    def accept(self, claims: list[Claim]) -> None: ...


class Signals:
    def __init__(self) -> None:
        self._wakers: set[Callable[[], None]] = set()
        self._cancel_listeners: set[Callable[[str], None]] = set()
        self._takers: list[Taker] = []

    def add_waker(self, wake: Callable[[], None]) -> None:
        self._wakers.add(wake)

    def remove_waker(self, wake: Callable[[], None]) -> None:
        self._wakers.discard(wake)

    def wake_workers(self) -> None:
        for wake in list(self._wakers):
            wake()

    def add_cancel_listener(self, listener: Callable[[str], None]) -> None:
        self._cancel_listeners.add(listener)

    def remove_cancel_listener(self, listener: Callable[[str], None]) -> None:
        self._cancel_listeners.discard(listener)

    def cancelled(self, run_id: str) -> None:
        """Stop this process's invocation of the run, if one runs here."""
        for listener in list(self._cancel_listeners):
            listener(run_id)

    def add_taker(self, taker: Taker) -> None:
        self._takers.append(taker)

    def remove_taker(self, taker: Taker) -> None:
        if taker in self._takers:
            self._takers.remove(taker)

    def handoff(self) -> tuple[Taker, Handoff] | None:
        """The first worker that takes new runs now, and what it takes."""
        for taker in self._takers:
            handoff = taker.handoff()
            if handoff is not None:
                return taker, handoff
        return None
