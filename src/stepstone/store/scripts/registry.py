"""The function registry's rows: what an app (a native one's workers, or a synced SDK
app) publishes as its functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..tx import Tx, to_json


def replace_functions(tx: Tx, app_id: str, configs: Sequence[dict[str, Any]], now: float) -> None:
    """Publish `configs` as all of `app_id`'s functions: the ones it no longer has go."""
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
