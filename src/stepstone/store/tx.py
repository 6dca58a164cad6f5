"""The plumbing every transaction script stands on: the `Tx` a dialect hands a script,
its cursors, deferred checks, JSON columns, the fence check and history rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from ..errors import LeaseLostError
from ..jsontext import compact
from ..records import HistoryEntry
from .base import (
    Lease,
)

T = TypeVar("T")


class Cursor(Protocol):
    @property  # read-only, as sqlite3's and psycopg's cursors have it
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Many(list[Any]):
    """A list parameter, for `IN`/`ANY` over many values in one statement: an array on
    PostgreSQL, JSON text (read with `json_each`) on SQLite."""


class Tx(Protocol):
    """Runs the named query (queries.py) with its `:name` parameters as keywords."""

    def __call__(self, name: str, /, **params: Any) -> Cursor: ...


def checking_params(tx: Tx, taken: Mapping[str, frozenset[str]]) -> Tx:
    """`tx` refusing a statement not given exactly the parameters its query takes (in
    tests: a parameter no query reads is a mistake that would otherwise pass unseen)."""

    def run(name: str, /, **params: Any) -> Cursor:
        expected = taken[name]
        if params.keys() != expected:
            missing, extra = sorted(expected - params.keys()), sorted(params.keys() - expected)
            raise TypeError(
                f"query {name!r} takes {sorted(expected)}: missing {missing}, unexpected {extra}"
            )
        return tx(name, **params)

    return run


class Deferred(Generic[T]):
    """What a script returns when its outcome depends on results it has not read yet.

    The dispatcher calls `resolve()` before COMMIT. On PostgreSQL, whose statements are
    pipelined, a batch's scripts first send all their statements back to back, and the
    results are awaited once for the whole batch when the first `resolve()` reads one;
    a check that fails there fails its script as if it had failed at once."""

    __slots__ = ("resolve",)

    def __init__(self, resolve: Callable[[], T]) -> None:
        self.resolve = resolve


def resolved(value: Deferred[T] | T) -> T:
    """A script's result, with a `Deferred` one resolved."""
    return value.resolve() if isinstance(value, Deferred) else value


def to_json(value: Any) -> str | None:
    return None if value is None else compact(value)


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def lease_lost(lease: Lease) -> NoReturn:
    raise LeaseLostError(
        f"run {lease.run_id} is no longer leased to {lease.owner} (fencing token "
        f"{lease.fence} is stale); another worker took it over or it ended"
    )


def check_fence(tx: Tx, lease: Lease) -> None:
    row = tx("check_fence", run_id=lease.run_id).fetchone()
    if row is None or row["fence"] != lease.fence:
        lease_lost(lease)


def insert_history(tx: Tx, run_id: str, entry: HistoryEntry) -> None:
    tx(
        "insert_history",
        run_id=run_id,
        at=entry.at,
        kind=entry.kind,
        data=to_json(entry.data or None),
    )
