"""Persistence: one Store interface, with SQLite (file or memory) and PostgreSQL behind it."""

from __future__ import annotations

from ..errors import ConfigError
from ..output import redact_url
from .base import (
    Claim,
    Handoff,
    IntakeReport,
    Lease,
    NewEvent,
    NewRun,
    Pruned,
    RunPage,
    Store,
    StoredEvent,
    SyncedAppRecord,
    Wait,
    WaitKind,
)

__all__ = [
    "Claim",
    "Handoff",
    "IntakeReport",
    "Lease",
    "NewEvent",
    "NewRun",
    "Pruned",
    "RunPage",
    "Store",
    "StoredEvent",
    "SyncedAppRecord",
    "Wait",
    "WaitKind",
    "redact_url",
    "store_from_url",
]


def store_from_url(url: str) -> Store:
    """`memory://`, `sqlite:///path.db` or `postgresql://user@host/db`."""
    if url.startswith("memory:"):
        from .sqlite import SQLiteStore

        # An in-memory SQLite database: the same SQL as the file store, no durability.
        return SQLiteStore(None, synchronous="off", url=url)
    if url.startswith("sqlite:"):
        from .sqlite import sqlite_from_url

        return sqlite_from_url(url)
    if url.startswith(("postgresql:", "postgres:")):
        from .postgres import postgres_from_url

        return postgres_from_url(url)
    raise ConfigError(
        f"database URL {url!r} is not supported: use sqlite:///path.db, "
        "postgresql://user@host/db or memory://"
    )
