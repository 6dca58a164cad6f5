"""The function registry's rows: what an app (a native one's workers, or a synced SDK
app) publishes as its functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import AppIdTakenError
from ..tx import Tx, to_json


def check_app_id(tx: Tx, app_id: str, *, synced: bool) -> None:
    """Raises unless `app_id` may publish. `synced`: an SDK app's sync, else a Python app's
    workers. One id cannot be both: each would delete the other's
    functions as ones it no longer has."""
    sdk_app = tx("app_url", app_id=app_id).fetchone()
    if synced and sdk_app is None and tx("app_functions", app_id=app_id).fetchone():
        raise AppIdTakenError(
            f"app id {app_id!r} is taken by a Python app (stepstone.App({app_id!r})) whose "
            "workers publish their functions to this database; give the SDK app another id"
        )
    if not synced and sdk_app is not None:
        raise AppIdTakenError(
            f"{app_id!r} is the id of an SDK app synced to this database from "
            f"{sdk_app['url']}; give this stepstone.App another name"
        )


def replace_functions(
    tx: Tx, app_id: str, configs: Sequence[dict[str, Any]], now: float, *, synced: bool
) -> None:
    """Publish `configs` as all of `app_id`'s functions: the ones it no longer has go.
    `synced`: an SDK app's sync (whose row the caller has checked and written first), else
    a Python app's workers."""
    if not synced:
        if not configs and tx("app_url", app_id=app_id).fetchone():
            return  # a process with no functions of its own (`stepstone dev` without an app)
        check_app_id(tx, app_id, synced=False)
    current = {c["id"] for c in configs}
    for row in tx("app_functions", app_id=app_id).fetchall():
        if row["id"] not in current:
            tx("delete_function", id=row["id"])
    for config in configs:
        tx(
            "upsert_function",
            id=config["id"],
            app_id=app_id,
            config=to_json(config),
            updated_at=now,
        )
