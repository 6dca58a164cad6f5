"""The functions this process knows: its own, and those other processes published in the
database, so that an event sent from anywhere starts the runs of every function."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .errors import ConfigError
from .function import FunctionDef, function_from_config
from .store import Store

log = logging.getLogger("stepstone.registry")


class Registry:
    """Local functions by id, and a cache of the published ones (reloaded every `ttl` s)."""

    def __init__(self, app_id: str, *, ttl: float = 2.0) -> None:
        self.app_id = app_id
        self.local: dict[str, FunctionDef] = {}
        self.ttl = ttl
        # id -> (its config as canonical JSON, the definition built from it)
        self._published: dict[str, tuple[str, FunctionDef]] = {}
        self._loaded_at = -1e9

    def add(self, fn: FunctionDef) -> None:
        if fn.id in self.local:
            raise ConfigError(f"function id {fn.id!r} is already registered in app {self.app_id!r}")
        self.local[fn.id] = fn

    def get(self, function_id: str) -> FunctionDef:
        """A function of this process, or one another process published."""
        fn = self.local.get(self._local_id(function_id))
        if fn is None and function_id in self._published:
            fn = self._published[function_id][1]
        if fn is None:
            raise ConfigError(f"no function {function_id!r} is registered in app {self.app_id!r}")
        return fn

    def resolve(self, function: Any) -> str:
        """The id of a function given as its id or as the object `@app.function` returned."""
        function_id = function.id if isinstance(function, FunctionDef) else function
        if not isinstance(function_id, str):
            raise ConfigError(f"no function {function_id!r} is registered in app {self.app_id!r}")
        function_id = self._local_id(function_id)
        if function_id not in self.local and function_id not in self._published:
            raise ConfigError(f"no function {function_id!r} is registered in app {self.app_id!r}")
        return function_id

    def _local_id(self, function_id: str) -> str:
        """SDK apps name a function `<app id>-<function id>`: an SDK function invoking one of
        this app's functions names it so."""
        prefix = f"{self.app_id}-"
        if function_id not in self.local and function_id.startswith(prefix):
            bare = function_id[len(prefix) :]
            if bare in self.local:
                return bare
        return function_id

    def all(self) -> list[FunctionDef]:
        """This process's functions, then those other processes published."""
        local = list(self.local.values())
        return local + [fn for fid, (_, fn) in self._published.items() if fid not in self.local]

    async def refresh(self, store: Store, *, force: bool = False) -> None:
        """Reload the published functions, at most every `ttl` seconds unless forced."""
        now = time.monotonic()
        if not force and now - self._loaded_at < self.ttl:
            return
        published: dict[str, tuple[str, FunctionDef]] = {}
        for config in await store.registered_functions():
            key = json.dumps(config, sort_keys=True)
            known = self._published.get(config["id"])
            if known is not None and known[0] == key:
                published[config["id"]] = known
                continue
            try:
                published[config["id"]] = (key, function_from_config(config))
            except (ConfigError, KeyError, TypeError) as exc:
                log.warning("ignoring published function %r: %s", config.get("id"), exc)
        self._published = published
        self._loaded_at = now

    async def publish(self, store: Store, now: float) -> None:
        """Publish this process's functions, so other processes' events start their runs."""
        configs = [fn.describe() for fn in self.local.values()]
        await store.register_functions(self.app_id, configs, now)
        await self.refresh(store, force=True)
