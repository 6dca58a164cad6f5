"""The ASGI application. It calls the same App methods users call and adds no logic."""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import EventError

if TYPE_CHECKING:
    from ..app import App

MAX_BODY = 4 * 1024 * 1024


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


def create_app(
    app: App, *, dev: bool, event_keys: list[str], api_token: str | None = None
) -> Starlette:
    keys = [k.encode() for k in event_keys]

    def key_ok(key: str) -> bool:
        if dev:
            return True
        given = key.encode()
        # compare against every key so timing does not tell which one nearly matched
        return any([hmac.compare_digest(given, k) for k in keys])

    async def intake(request: Request) -> JSONResponse:
        if not key_ok(request.path_params["key"]):
            return _error(401, "unknown event key")
        body = await _read_body(request, MAX_BODY)
        if body is None:
            return _error(413, f"request body is over {MAX_BODY} bytes")
        try:
            payload: Any = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"the body is not valid JSON: {exc}")
        try:
            ids = await app.send(payload)
        except EventError as exc:
            return _error(400, str(exc))
        return JSONResponse({"ids": ids, "status": 200})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "app": app.id})

    return Starlette(
        routes=[
            Route("/e/{key}", intake, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
