"""The HTTP side: event intake, REST API and dashboard, as one ASGI app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .asgi import create_app

if TYPE_CHECKING:
    from ..app import App

__all__ = ["create_app", "serve"]


async def serve(
    app: App,
    *,
    host: str,
    port: int,
    dev: bool,
    event_keys: list[str],
    api_token: str | None = None,
) -> None:
    import uvicorn

    config = uvicorn.Config(
        create_app(app, dev=dev, event_keys=event_keys, api_token=api_token),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
    )
    await uvicorn.Server(config).serve()
