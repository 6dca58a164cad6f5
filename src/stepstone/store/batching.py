"""Group commit's plumbing: a database thread takes every request waiting in its queue,
and hands the results back to the event loops that wait for them."""

from __future__ import annotations

import asyncio
import contextlib
import queue
from typing import Any

STOP = object()  # put in a queue: its thread ends after the requests before it


def take_batch(requests: queue.SimpleQueue[Any], limit: int) -> tuple[list[Any], bool]:
    """Waits for a request, then takes every one already waiting (up to `limit`).
    Returns them, and whether STOP came (after them)."""
    first = requests.get()
    if first is STOP:
        return [], True
    batch = [first]
    while len(batch) < limit:
        try:
            item = requests.get_nowait()
        except queue.Empty:
            break
        if item is STOP:
            return batch, True
        batch.append(item)
    return batch, False


def settle_all(
    loop: asyncio.AbstractEventLoop, results: list[tuple[asyncio.Future[Any], bool, Any]]
) -> None:
    """Settle (future, ok, value-or-exception) triples with one wake-up of `loop`."""

    def settle() -> None:
        for future, ok, value in results:
            if future.done():
                continue  # its caller stopped waiting (cancelled)
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    # RuntimeError: the caller's loop has closed; nobody is waiting
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(settle)


def settle_by_loop(batch: list[Any], results: list[tuple[bool, Any]]) -> None:
    """`batch` holds (script, future, loop, ...) requests; one wake-up per loop for all."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for (ok, value), request in zip(results, batch, strict=True):
        by_loop.setdefault(request[2], []).append((request[1], ok, value))
    for loop, settled in by_loop.items():
        settle_all(loop, settled)


def fail_pending(requests: queue.SimpleQueue[Any], error: BaseException) -> None:
    """Fails every request still queued once its thread has ended (one that slipped in
    while the store was closing): its caller is told, rather than waiting forever."""
    left = []
    while True:
        try:
            item = requests.get_nowait()
        except queue.Empty:
            break
        if item is not STOP:
            left.append(item)
    settle_by_loop(left, [(False, error)] * len(left))
