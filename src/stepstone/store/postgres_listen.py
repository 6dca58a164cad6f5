"""LISTEN/NOTIFY: wakes this process's workers when another process creates or frees work.

The jobs table's triggers (migration 0004) send the notifications. One connection per
store listens for all its subscribers. When it breaks (the server restarts, the network
drops) it reconnects with backoff and then wakes every subscriber, because whatever was
sent while nobody listened is lost; the workers' fallback poll covers that gap too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

log = logging.getLogger("stepstone.store.postgres")

WORK_CHANNEL = "stepstone_work"
CANCEL_CHANNEL = "stepstone_cancel"
APPLICATION_NAME = "stepstone-listen"  # shows in pg_stat_activity


class Listener:
    def __init__(
        self,
        conninfo: str,
        *,
        health_check: float = 30.0,
        first_connect_timeout: float = 10.0,
        max_backoff: float = 2.0,
    ) -> None:
        self.conninfo = conninfo
        # A connection silent this long is probed, so a dead one without a FIN is noticed.
        self.health_check = health_check
        self.first_connect_timeout = first_connect_timeout
        self.max_backoff = max_backoff
        self._subscribers: dict[Callable[[], None], Callable[[str], None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self.connections = 0  # connections made so far (1 + reconnections): for tests, stats
        self.notifications = 0  # notifications received

    async def add(self, wake: Callable[[], None], cancel: Callable[[str], None]) -> None:
        """Subscribe; returns once LISTEN is active, so no later notification is missed."""
        self._subscribers[wake] = cancel
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="stepstone-pg-listen")
        try:
            await asyncio.wait_for(self._listening.wait(), self.first_connect_timeout)
        except TimeoutError:
            log.warning("LISTEN is not active yet; workers poll until it connects")

    async def remove(self, wake: Callable[[], None]) -> None:
        self._subscribers.pop(wake, None)
        if not self._subscribers:
            await self.close()

    async def close(self) -> None:
        task, self._task = self._task, None
        self._listening = asyncio.Event()  # a later `add` waits for its own LISTEN
        if task is None or task.done():
            return
        loop = task.get_loop()
        if loop is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:  # closed from another loop's thread (the sync API's): cancel it on its own
            with contextlib.suppress(RuntimeError):  # that loop has already closed
                loop.call_soon_threadsafe(task.cancel)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            connected_before = self.connections
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connections > connected_before:
                    delay = 0.1  # it was up: start the backoff over
                log.warning("LISTEN connection failed (%s); reconnecting in %.1fs", exc, delay)
            self._listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, application_name=APPLICATION_NAME
        )
        async with conn:
            await conn.execute("LISTEN stepstone_work")  # WORK_CHANNEL
            await conn.execute("LISTEN stepstone_cancel")  # CANCEL_CHANNEL
            self.connections += 1
            self._listening.set()
            if self.connections > 1:
                log.info("LISTEN connection re-established")
            self._wake_all()  # work may have arrived while nobody listened
            while True:
                async for note in conn.notifies(timeout=self.health_check):
                    self.notifications += 1
                    if note.channel == CANCEL_CHANNEL:
                        for cancel in list(self._subscribers.values()):
                            cancel(note.payload)
                    self._wake_all()
                await asyncio.wait_for(conn.execute("SELECT 1"), self.health_check)

    def _wake_all(self) -> None:
        for wake in list(self._subscribers):
            wake()
