"""What the engine runs on, below App: the database, the function registry, the planner,
the in-process signals, and the settings that apply to every run. App is the front door
users hold over one Runtime; a worker needs only the Runtime."""

from __future__ import annotations

import threading

from .clock import Clock
from .intake import Intake
from .limits import Limits
from .planning import Planner
from .registry import Registry
from .retry import Backoff, default_backoff
from .sdk.signing import SigningKey
from .signals import Signals
from .store import Store, store_from_url


class Runtime:
    def __init__(
        self,
        app_id: str,
        database_url: str,
        *,
        backoff: Backoff | None = None,
        limits: Limits | None = None,
        clock: Clock | None = None,
        retry_after_min: float = 1.0,
        signing_key: SigningKey | None = None,
    ) -> None:
        self.app_id = app_id
        self.database_url = database_url
        self.backoff: Backoff = backoff or default_backoff
        self.limits = limits or Limits()
        self.clock = clock or Clock()
        self.retry_after_min = retry_after_min
        # signs call requests to SDK apps, and checks their answers (production); None: dev
        self.signing_key = signing_key
        self.registry = Registry(app_id)
        self.signals = Signals()
        self.planner = Planner(self.registry, self.clock, self.limits)
        self.intake = Intake(self.planner, self.signals, self.store)
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        subscribe = getattr(self.clock, "subscribe", None)
        if callable(subscribe):
            subscribe(self.signals.wake_workers)  # a test clock that moves wakes the workers

    async def store(self) -> Store:
        """The opened store (opened on first use, created and migrated if needed)."""
        with self._store_lock:
            if self._store is None:
                self._store = store_from_url(self.database_url)
            store = self._store
        await store.open()
        return store

    async def close(self) -> None:
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            await store.close()
