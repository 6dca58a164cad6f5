"""The REST API under /v1: each handler parses input, calls one App method, encodes the answer."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..records import RunStatus
from . import encode
from .auth import Credentials
from .http import ApiError, read_json
from .openapi import openapi_document

if TYPE_CHECKING:
    from ..app import App

Handler = Callable[[Request], Awaitable[Response]]
STATUSES = ", ".join(s.value for s in RunStatus)
MAX_LIMIT = 1000
MAX_SECONDS = 253402300799  # the end of year 9999


class Api:
    def __init__(self, app: App, credentials: Credentials, max_body: int) -> None:
        self.app = app
        self.credentials = credentials
        self.max_body = max_body

    def routes(self) -> list[Route]:
        p = self._protected
        return [
            Route("/v1/openapi.json", self.openapi, methods=["GET"]),
            Route("/v1/functions", p(self.functions), methods=["GET"]),
            Route("/v1/runs", p(self.list_runs), methods=["GET"]),
            Route("/v1/runs/{run_id}", p(self.get_run), methods=["GET"]),
            Route("/v1/runs/{run_id}/cancel", p(self.cancel), methods=["POST"]),
            Route("/v1/runs/{run_id}/rerun", p(self.rerun), methods=["POST"]),
            Route("/v1/events", p(self.list_events), methods=["GET"]),
            Route("/v1/events", p(self.send), methods=["POST"]),
            Route("/v1/events/{event_id}", p(self.get_event), methods=["GET"]),
        ]

    def _protected(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            # A page on another site may not drive the API through a visitor's browser (the
            # dev server has no token). Browsers set this header; other clients do not.
            if request.headers.get("sec-fetch-site") == "cross-site":
                raise ApiError(403, "the API refuses requests made by pages of other sites")
            if not self.credentials.token_ok(request.headers.get("authorization")):
                raise ApiError(
                    401,
                    "missing or wrong API token: send 'Authorization: Bearer <token>'",
                    {"www-authenticate": "Bearer"},
                )
            return await handler(request)

        return guarded

    # -- handlers ------------------------------------------------------------------------
    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self.app.id))

    async def functions(self, request: Request) -> Response:
        return JSONResponse({"functions": [fn.describe() for fn in self.app.functions.values()]})

    async def list_runs(self, request: Request) -> Response:
        query = _query(
            request, {"function", "status", "created_after", "created_before", "limit", "cursor"}
        )
        status = query.get("status")
        if status is not None and status not in {s.value for s in RunStatus}:
            raise ApiError(400, f"status must be one of {STATUSES}; got {status!r}")
        page = await self.app.list_runs(
            function_id=query.get("function"),
            status=status,
            limit=_limit(query.get("limit")),
            cursor=query.get("cursor"),
            created_after=_timestamp("created_after", query.get("created_after")),
            created_before=_timestamp("created_before", query.get("created_before")),
        )
        return JSONResponse(
            {"runs": [encode.run_summary(r) for r in page.runs], "next_cursor": page.next_cursor}
        )

    async def get_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        run = await self.app.get_run(run_id)
        if run is None:
            raise ApiError(404, f"no run has id {run_id!r}")
        events = [e for e in [await self.app.get_event(i) for i in run.event_ids] if e]
        return JSONResponse(encode.run_detail(run, events))

    async def cancel(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if not await self.app.cancel(run_id):
            run = await self.app.get_run(run_id, history=False)
            status = run.status.value if run else "gone"
            raise ApiError(409, f"run {run_id} has already ended ({status}); nothing to cancel")
        return JSONResponse({"run_id": run_id, "cancel_requested": True})

    async def rerun(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        body = await read_json(request, self.max_body, empty={})
        if not isinstance(body, Mapping):
            raise ApiError(400, 'the body must be a JSON object like {"from_step": "id"}')
        unknown = set(body) - {"from_step"}
        if unknown:
            raise ApiError(400, f"unknown field(s) {', '.join(sorted(unknown))}; send from_step")
        from_step = body.get("from_step")
        if from_step is not None and not isinstance(from_step, str):
            raise ApiError(400, "from_step must be a step id (a string)")
        new_id = await self.app.rerun(run_id, from_step=from_step)
        return JSONResponse({"run_id": new_id, "rerun_of": run_id})

    async def list_events(self, request: Request) -> Response:
        query = _query(request, {"name", "limit", "cursor"})
        limit = _limit(query.get("limit"))
        # one more than asked tells whether another page exists
        found = await self.app.list_events(
            name=query.get("name"), limit=limit + 1, cursor=query.get("cursor")
        )
        found, more = found[:limit], len(found) > limit
        next_cursor = found[-1].event.id if more else None
        return JSONResponse(
            {"events": [encode.stored_event(e) for e in found], "next_cursor": next_cursor}
        )

    async def get_event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        found = await self.app.get_event(event_id)
        if found is None:
            raise ApiError(404, f"no event has id {event_id!r}")
        runs = await self.app.runs_for_event(event_id)
        return JSONResponse(
            {**encode.stored_event(found), "runs": [encode.run_summary(r) for r in runs]}
        )

    async def send(self, request: Request) -> Response:
        payload = await read_json(request, self.max_body)
        ids = await self.app.send(payload)
        return JSONResponse({"ids": ids, "status": 200})


# -- query parsing --------------------------------------------------------------------------
def _query(request: Request, allowed: set[str]) -> dict[str, str]:
    params = request.query_params
    unknown = set(params) - allowed
    if unknown:
        raise ApiError(
            400,
            f"unknown query parameter(s) {', '.join(sorted(unknown))}; "
            f"this endpoint takes {', '.join(sorted(allowed))}",
        )
    out = {}
    for name in params:
        values = params.getlist(name)
        if len(values) > 1:
            raise ApiError(400, f"give the query parameter {name} once")
        out[name] = values[0]
    return out


def _limit(raw: str | None) -> int:
    if raw is None:
        return 50
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, f"limit must be an integer from 1 to {MAX_LIMIT}; got {raw!r}")
    return int(raw)


def _timestamp(name: str, raw: str | None) -> float | None:
    """Seconds since the epoch, or an ISO 8601 time (UTC unless it names an offset)."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            if abs(value) > MAX_SECONDS:
                raise ApiError(400, f"{name} must be a time before the year 10000")
            return value
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400,
            f"{name} must be seconds since the epoch or an ISO 8601 time "
            f"like 2024-05-01T12:00:00Z; got {raw!r}",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
