"""The HTTP floor's app: a bare ASGI callable on uvicorn that answers every request 200
`{}` (no framework, no routing, no body parsing), in its own process.

python -m bench.trivial_http PORT
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


def main(argv: list[str]) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(argv[0]), log_level="warning", lifespan="off")


if __name__ == "__main__":
    main(sys.argv[1:])
