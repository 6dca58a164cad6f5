"""ASGI middleware: security headers on every answer, and an access log without secrets."""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..output import printable

log = logging.getLogger("stepstone.http")
_EVENT_KEY = re.compile(r"^/e/[^/]+")

# The dashboard loads only its own files and builds its DOM with textContent; the policy
# stops anything else from running even if a bug let markup in.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def redact(path: str) -> str:
    """The path as it may be logged: an event key becomes `***`, and control characters
    (a `%00` arrives decoded, as NUL) are escaped."""
    return printable(_EVENT_KEY.sub("/e/***", path))


class HttpMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # the query string and headers (tokens) are never logged; keys are redacted
            log.debug(
                "%s %s %s %.1fms",
                scope["method"],
                redact(scope["path"]),
                status or "-",
                (time.perf_counter() - started) * 1000,
            )
