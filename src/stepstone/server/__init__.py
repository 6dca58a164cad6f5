"""The HTTP side: event intake, REST API and dashboard, as one ASGI app."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .asgi import create_app
from .http import DEFAULT_MAX_BODY

if TYPE_CHECKING:
    import uvicorn

    from ..app import App

__all__ = ["bind", "create_app", "make_server", "serve"]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (OSError when the address is taken); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def make_server(
    app: App,
    *,
    dev: bool,
    event_keys: Sequence[str] = (),
    api_token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    signing_key: str | None = None,
) -> uvicorn.Server:
    """A uvicorn server for `app`; run it with `await server.serve(sockets=[bind(...)])`
    and stop it with `server.should_exit = True`."""
    import uvicorn

    config = uvicorn.Config(
        create_app(
            app,
            dev=dev,
            event_keys=event_keys,
            api_token=api_token,
            max_body=max_body,
            signing_key=signing_key,
        ),
        log_level="warning",
        access_log=False,  # its lines would carry event keys in paths
        lifespan="off",
        server_header=False,
    )
    return uvicorn.Server(config)


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
