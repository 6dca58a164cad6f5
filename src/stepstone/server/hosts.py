"""What keeps web pages from driving the dev server through a developer's browser.

The dev server has no keys and no token, so any page the developer visits could use it:
by fetching or form-posting to it (cross-site requests), or by rebinding its own name to
127.0.0.1 (DNS rebinding: the browser then sees one origin, and sends that name as Host).
`BrowserGuard` answers 403 to a Host that is not a loopback name or one allowed by name,
and to a request to /e or /v1 that a browser made for a page of another site. SDKs, curl and
the dashboard itself send no Origin or their own, and are not affected.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = ("localhost", "127.0.0.1", "::1")
# the paths a page of another site may not use, and what it is told
GUARDED = {
    "/e": "the dev server refuses events sent by pages of other sites",
    "/v1": "the API refuses requests made by pages of other sites",
}


def host_name(value: str) -> str:
    """The name in a Host header or an address: lower case, without port, brackets or a
    trailing dot ("[::1]:8288" -> "::1")."""
    value = value.strip().lower()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


class AllowedHosts:
    """Loopback names (and *.localhost, which browsers resolve to loopback themselves),
    plus the names given."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = set(LOOPBACK) | {host_name(n) for n in names if n.strip()}

    def __contains__(self, name: str) -> bool:
        return name in self.names or name.endswith(".localhost")

    def __str__(self) -> str:
        return ", ".join(sorted(self.names))


class BrowserGuard:
    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await _forbidden(refusal, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is not None and host_name(host) not in self.allowed:
            return (
                f"the dev server answers to {self.allowed} (and *.localhost), not to "
                f"{host!r}; start it with --allowed-host {host_name(host) or 'NAME'} "
                "to serve that name"
            )
        path: str = scope["path"]
        prefix = "/" + path.split("/", 2)[1]
        if prefix not in GUARDED:
            return None
        origin = headers.get("origin")
        cross_site = headers.get("sec-fetch-site") == "cross-site" or (
            origin is not None and host_name(urlsplit(origin).netloc) not in self.allowed
        )
        return GUARDED[prefix] if cross_site else None


async def _forbidden(message: str, send: Send) -> None:
    body = json.dumps({"error": message, "status": 403}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
