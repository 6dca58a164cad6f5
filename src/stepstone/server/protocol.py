"""uvicorn's HTTP/1.1 protocol with the guards a server facing the internet needs.

uvicorn closes idle keep-alive connections, but a connection that never finishes its request
head, or trickles its body, stays open for ever, and nothing bounds how many connections are
open. Each connection here has a deadline for its request head and one for its body; past
`max_connections` the oldest connection still waiting for a request is closed to make room
(a busy server answers 503 instead); a head over `max_header_bytes` is answered 431; and
every accepted socket gets TCP_NODELAY.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import resource
import socket
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

KIB = 1024


def default_max_connections() -> int:
    """Half the process's descriptor limit (the rest is for the database and files), at most
    1,000: below it, accept() never fails with "too many open files"."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(8, min(1000, soft // 2))


@dataclass
class ServerLimits:
    """What one client may take of the server. Times are seconds."""

    header_timeout: float = 10.0  # from a request's first byte (or the connection) to its head
    body_timeout: float = 30.0  # from the end of the head to the end of the body
    keep_alive: float = 5.0  # an idle connection between two requests
    max_connections: int = field(default_factory=default_max_connections)
    max_header_bytes: int = 16 * KIB
    # the connections waiting for a request (idle, or with part of a head), oldest first
    waiting: dict[GuardedProtocol, None] = field(default_factory=dict, repr=False)
    open: int = field(default=0, repr=False)  # accepted and not yet closed
    closing: int = field(default=0, repr=False)  # closed to make room, not yet gone

    def protocol_class(self) -> type[GuardedProtocol]:
        """The protocol class to give uvicorn (`Config(http=...)`), bound to these limits."""
        return type("GuardedProtocol", (GuardedProtocol,), {"limits": self})

    def make_room(self, count: int = 16) -> bool:
        """Close up to `count` of the connections that have waited longest for a request;
        False when none is waiting. Their descriptors are freed on the loop's next turn."""
        evicted = list(itertools.islice(self.waiting, count))
        for protocol in evicted:
            protocol.evict()
        return bool(evicted)


class _Connection(h11.Connection):
    """h11's connection, remembering the status its last protocol error suggests (431...).

    h11 bounds only a head that arrives in pieces; one that arrives whole is measured here.
    """

    error_status = 400

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in event.headers)
                if size > self._max_incomplete_event_size:
                    raise h11.RemoteProtocolError("the head is too large", error_status_hint=431)
            return event
        except h11.RemoteProtocolError as exc:
            self.error_status = exc.error_status_hint
            raise


class GuardedProtocol(H11Protocol):
    limits: ServerLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _Connection(h11.SERVER, self.limits.max_header_bytes)
        self._deadline: asyncio.TimerHandle | None = None
        self._deadline_for: object = None
        self._evicted = False

    # -- the connection's life ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        _set_nodelay(transport)
        self._update_deadlines()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self.limits.waiting.pop(self, None)
        self.limits.open = max(0, self.limits.open - 1)
        if self._evicted:
            self.limits.closing -= 1
        super().connection_lost(exc)

    def evict(self) -> None:
        """Close this connection (waiting for a request) to make room for a new one."""
        self.limits.waiting.pop(self, None)
        self._cancel_deadline()
        if not self._evicted:
            self._evicted = True
            self.limits.closing += 1
        self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if not self.transport.is_closing():
            self._update_deadlines()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._update_deadlines()

    def send_400_response(self, msg: str) -> None:
        assert isinstance(self.conn, _Connection)
        if self.conn.error_status == 431:
            self._answer_and_close(
                431, f"the request head is over the limit of {self.limits.max_header_bytes} bytes"
            )
        else:
            self._answer_and_close(400, "the request is not valid HTTP/1.1")

    # -- deadlines ------------------------------------------------------------------------
    def _update_deadlines(self) -> None:
        state = self.conn.their_state
        if state is h11.IDLE:
            self.limits.waiting.setdefault(self, None)
            if self.timeout_keep_alive_task is not None:
                self._cancel_deadline()  # idle between requests: the keep-alive timer decides
            else:
                self._arm("head", self.limits.header_timeout, self._head_timed_out)
        elif state is h11.SEND_BODY:
            self.limits.waiting.pop(self, None)
            self._arm("body", self.limits.body_timeout, self._body_timed_out)
        else:
            self.limits.waiting.pop(self, None)
            self._cancel_deadline()

    def _arm(self, what: str, delay: float, callback: Any) -> None:
        if self._deadline_for == what:
            return
        self._cancel_deadline()
        self._deadline = self.loop.call_later(delay, callback)
        self._deadline_for = what

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self._deadline_for = None

    def _head_timed_out(self) -> None:
        self._deadline = self._deadline_for = None
        if self.transport.is_closing():
            return
        if self.conn.trailing_data[0]:
            seconds = self.limits.header_timeout
            self._answer_and_close(408, f"the request head took over {seconds:g}s to arrive")
        else:
            self.transport.close()  # nothing was asked: close quietly, as keep-alive does

    def _body_timed_out(self) -> None:
        self._deadline = self._deadline_for = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answered = cycle is not None and cycle.response_started
        if cycle is not None:
            cycle.disconnected = True  # the app reads a disconnect, and its answer is dropped
            cycle.message_event.set()
        if answered:
            self.transport.close()
        else:
            seconds = self.limits.body_timeout
            self._answer_and_close(408, f"the request body took over {seconds:g}s to arrive")

    def _answer_and_close(self, status: int, message: str) -> None:
        self._cancel_deadline()
        self.limits.waiting.pop(self, None)
        self.transport.write(answer(status, message))
        self.transport.close()


def answer(status: int, message: str, *headers: str) -> bytes:
    """A whole HTTP/1.1 answer with the API's error body, closing the connection."""
    body = json.dumps({"error": message, "status": status}).encode()
    head = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *headers,
    ]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + body


def refuse(conn: socket.socket) -> None:
    """Answer a connection accepted past the limit with 503, and close it at once."""
    try:
        conn.setblocking(False)
        conn.send(answer(503, "the server has too many connections; try again", "retry-after: 1"))
    except OSError:
        pass
    finally:
        conn.close()


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Send small answers at once: without TCP_NODELAY, Nagle's algorithm holds a keep-alive
    connection's answer until the client's delayed ACK (~40 ms)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
