"""The listening socket: TCP_NODELAY on what it accepts, and a bound on how many it holds.

asyncio accepts up to its backlog of connections each time the socket is readable, before
any of them reaches a protocol: a limit kept by the protocols alone would let a flood run
the descriptor table full, and asyncio then logs a traceback for every failed accept.
`Listener.accept` keeps the count itself: at the limit it closes the connections that have
waited longest for a request and leaves new ones queued until their descriptors are free,
or, when every connection is busy with a request, answers the new one 503.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import uvicorn

from .protocol import ServerLimits, refuse


class Listener(socket.socket):
    limits: ServerLimits | None = None

    def accept(self) -> tuple[socket.socket, Any]:
        limits = self.limits
        if limits is None:
            return super().accept()
        while limits.open >= limits.max_connections:
            if limits.closing or limits.make_room():
                raise BlockingIOError  # asyncio tries again on the loop's next turn
            conn, _ = super().accept()  # BlockingIOError when no connection is queued
            refuse(conn)
        conn, address = super().accept()
        limits.open += 1
        return conn, address


def bind(host: str, port: int) -> Listener:
    """A listening socket (OSError when the address is taken); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Accepted sockets inherit the protocol number, and asyncio sets TCP_NODELAY only on
    # sockets whose protocol is IPPROTO_TCP: with the default 0, every answer on a
    # keep-alive connection waited ~40 ms for the client's delayed ACK (Nagle).
    sock = Listener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class GuardedServer(uvicorn.Server):
    """uvicorn's server, holding the Listeners it serves to `limits`."""

    def __init__(self, config: uvicorn.Config, limits: ServerLimits) -> None:
        super().__init__(config)
        self.limits = limits

    async def startup(self, sockets: Sequence[socket.socket] | None = None) -> None:
        for sock in sockets or ():
            if not isinstance(sock, Listener):
                raise TypeError("serve a socket made by stepstone.server.bind()")
            sock.limits = self.limits
        await super().startup(sockets=list(sockets) if sockets is not None else None)
