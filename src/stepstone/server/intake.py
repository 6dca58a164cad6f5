"""Event intake: POST /e/{event_key} with one event or an array of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import tracing
from .auth import Credentials
from .http import ApiError, read_json

if TYPE_CHECKING:
    from ..app import App


class Intake:
    def __init__(self, app: App, credentials: Credentials, max_body: int) -> None:
        self.app = app
        self.credentials = credentials
        self.max_body = max_body

    def routes(self) -> list[Route]:
        return [
            Route("/e/{key}", self.receive, methods=["POST"]),
            Route("/e", self.receive, methods=["POST"]),
            Route("/e/", self.receive, methods=["POST"]),
        ]

    async def receive(self, request: Request) -> Response:
        key = request.path_params.get("key")
        # the key is checked before a byte of the body is read
        if key is None and not self.credentials.dev:
            raise ApiError(401, "an event key is required: POST /e/{event_key}")
        if key is not None and not self.credentials.event_key_ok(key):
            raise ApiError(401, "unknown event key")
        payload = await read_json(request, self.max_body)
        # App.send validates every event before it stores any; its span continues the
        # trace the request came in (its `traceparent` and `tracestate` headers; several
        # tracestate headers are one list, as W3C Trace Context combines them)
        tracestate = ",".join(request.headers.getlist("tracestate")) or None
        with tracing.incoming(request.headers.get("traceparent"), tracestate):
            ids = await self.app.send(payload)
        return JSONResponse({"ids": ids, "status": 200})
