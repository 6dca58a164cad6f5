"""The HTTP side: event intake, REST API and dashboard, as one ASGI app."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .asgi import create_app
from .http import DEFAULT_MAX_BODY
from .listener import GuardedServer, Listener, bind
from .logs import limit_noisy_loggers
from .protocol import ServerLimits

if TYPE_CHECKING:
    import uvicorn

    from ..app import App

__all__ = ["Listener", "ServerLimits", "bind", "create_app", "make_server", "serve"]


def make_server(
    app: App,
    *,
    dev: bool,
    event_keys: Sequence[str] = (),
    api_token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    limits: ServerLimits | None = None,
    allowed_hosts: Sequence[str] = (),
    signing_key: str | None = None,
) -> uvicorn.Server:
    """A uvicorn server for `app`; run it with `await server.serve(sockets=[bind(...)])`
    and stop it with `server.should_exit = True`."""
    import uvicorn

    limits = limits or ServerLimits()
    config = uvicorn.Config(
        create_app(
            app,
            dev=dev,
            event_keys=event_keys,
            api_token=api_token,
            max_body=max_body,
            allowed_hosts=allowed_hosts,
            signing_key=signing_key,
        ),
        http=limits.protocol_class(),
        timeout_keep_alive=limits.keep_alive,  # type: ignore[arg-type]  # a float works
        h11_max_incomplete_event_size=limits.max_header_bytes,
        log_level="warning",
        access_log=False,  # its lines would carry event keys in paths
        lifespan="off",
        server_header=False,
    )
    server = GuardedServer(config, limits)
    limit_noisy_loggers()  # after uvicorn's Config, which sets its loggers up
    return server


async def serve(
    app: App,
    *,
    host: str,
    port: int,
    dev: bool,
    event_keys: Sequence[str] = (),
    api_token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> None:
    server = make_server(
        app, dev=dev, event_keys=event_keys, api_token=api_token, max_body=max_body
    )
    await server.serve(sockets=[bind(host, port)])
