"""The REST API under /v1: each handler parses input, calls one App method, encodes the answer."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ConfigError, RunNotFoundError
from ..records import Run, RunStatus
from . import encode, models, stats
from .auth import Credentials
from .encode import respond
from .http import ApiError, read_json
from .openapi import openapi_document

if TYPE_CHECKING:
    from ..app import App
    from ..function import FunctionDef

Handler = Callable[[Request], Awaitable[Response]]
STATUSES = ", ".join(s.value for s in RunStatus)
MAX_LIMIT = 1000
MAX_SECONDS = 253402300799  # the end of year 9999
STATS_PAGES = 10  # a function's stats count at most its newest 10,000 runs of the day


class AnyText(Convertor[str]):
    """A path parameter of any characters. Starlette's `path` is `.*`, which stops at a
    newline, so an event stored with one in its id could not be read back (404)."""

    regex = "[\\s\\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("text", AnyText())


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
            # a function id may hold "/": matched as a path, up to the last segment
            Route("/v1/functions/{function_id:path}/stats", p(self.stats), methods=["GET"]),
            Route("/v1/functions/{function_id:path}/invoke", p(self.invoke), methods=["POST"]),
            Route("/v1/apps", p(self.apps), methods=["GET"]),
            Route("/v1/apps/sync", p(self.resync), methods=["POST"]),
            Route("/v1/runs", p(self.list_runs), methods=["GET"]),
            Route("/v1/runs/bulk", p(self.bulk), methods=["POST"]),
            Route("/v1/runs/{run_id}", p(self.get_run), methods=["GET"]),
            Route("/v1/runs/{run_id}/cancel", p(self.cancel), methods=["POST"]),
            Route("/v1/runs/{run_id}/rerun", p(self.rerun), methods=["POST"]),
            Route("/v1/events", p(self.list_events), methods=["GET"]),
            Route("/v1/events", p(self.send), methods=["POST"]),
            # an event id is the sender's own: any text, a `/` or a newline included
            Route("/v1/events/{event_id:text}", p(self.get_event), methods=["GET"]),
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
        """This app's functions, and those other processes and synced SDK apps published."""
        found = [models.Function.model_validate(fn.describe()) for fn in await self._functions()]
        return respond(models.FunctionList(functions=found), leave_out_unset=True)

    async def _functions(self) -> list[FunctionDef]:
        return await self.app.known_functions()

    async def _function_id(self, request: Request) -> str:
        function_id: str = request.path_params["function_id"]
        known = await self._functions()
        if function_id not in {fn.id for fn in known}:
            names = ", ".join(fn.id for fn in known) or "none"
            raise ApiError(404, f"no function has id {function_id!r}; this app has {names}")
        return function_id

    async def stats(self, request: Request) -> Response:
        function_id = await self._function_id(request)
        now = self.app.clock.now()
        runs: list[Run] = []
        cursor = None
        for _ in range(STATS_PAGES):
            page = await self.app.list_runs(
                function_id=function_id, created_after=now - 86400, limit=MAX_LIMIT, cursor=cursor
            )
            runs += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        return respond(stats.function_stats(function_id, runs, now, complete=cursor is None))

    async def invoke(self, request: Request) -> Response:
        function_id = await self._function_id(request)
        body = _model(models.Invoke, await read_json(request, self.max_body, empty={}))
        return respond(models.Started(run_id=await self.app.invoke(function_id, body.data)))

    async def apps(self, request: Request) -> Response:
        found = await self.app.synced_apps()
        functions = await self._functions()
        return respond(
            models.AppList(
                apps=[
                    models.SyncedApp(
                        id=app.id,
                        url=app.url,
                        sdk=app.sdk,
                        framework=app.framework,
                        app_version=app.app_version,
                        synced_at=app.synced_at,
                        error=app.error,
                        functions=[
                            fn.id
                            for fn in functions
                            if fn.runtime is not None and fn.runtime.app_id == app.id
                        ],
                    )
                    for app in found
                ]
            )
        )

    async def resync(self, request: Request) -> Response:
        """Only an app that synced before, at the URL it gave: this server calls no other."""
        body = _model(models.Resync, await read_json(request, self.max_body))
        known = {app.id: app for app in await self.app.synced_apps()}
        app = known.get(body.app_id)
        if app is None:
            names = ", ".join(sorted(known)) or "none"
            raise ApiError(404, f"no app {body.app_id!r} has synced; synced apps: {names}")
        from .sdk_sync import SyncError, sync_app

        try:
            await sync_app(app.url, dev=self.credentials.dev)
        except SyncError as exc:
            await self.app.record_sync_failure(app, str(exc))
            return respond(models.Resynced(app_id=app.id, synced=False, error=str(exc)))
        return respond(models.Resynced(app_id=app.id, synced=True, error=None))

    async def list_runs(self, request: Request) -> Response:
        query = _query(
            request,
            {"function", "status", "created_after", "created_before", "event", "if", "limit"}
            | {"cursor"},
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
            event=query.get("event") or None,
            if_=query.get("if") or None,
        )
        runs = await self._summaries(page.items)
        return respond(models.RunPage(runs=runs, next_cursor=page.next_cursor))

    async def _summaries(self, runs: list[Run]) -> list[models.RunSummary]:
        events = await self.app.run_events([run.id for run in runs])
        names = {e.event.id or "": e.event.name for e in events}
        return [encode.run_summary(run, names) for run in runs]

    async def get_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        run = await self.app.get_run(run_id)
        if run is None:
            raise ApiError(404, f"no run has id {run_id!r}")
        events = [e for e in [await self.app.get_event(i) for i in run.event_ids] if e]
        reruns = await self.app.reruns_of(run_id)
        return respond(encode.run_detail(run, events, reruns))

    async def cancel(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        await self._cancel(run_id)
        return respond(models.CancelRequested(run_id=run_id, cancel_requested=True))

    async def _cancel(self, run_id: str) -> None:
        if not await self.app.cancel(run_id):
            run = await self.app.get_run(run_id, history=False)
            status = run.status.value if run else "gone"
            raise ApiError(409, f"run {run_id} has already ended ({status}); nothing to cancel")

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
        return respond(models.Rerun(run_id=new_id, rerun_of=run_id))

    async def bulk(self, request: Request) -> Response:
        """Cancel or rerun many runs; each gets its own outcome (one failing stops none)."""
        body = _model(models.BulkRequest, await read_json(request, self.max_body))
        results = []
        for run_id in body.run_ids:
            try:
                if body.action == "cancel":
                    await self._cancel(run_id)
                    new_id = None
                else:
                    new_id = await self.app.rerun(run_id)
            except (ApiError, RunNotFoundError, ConfigError) as exc:
                message = exc.message if isinstance(exc, ApiError) else str(exc)
                results.append(
                    models.BulkItem(run_id=run_id, ok=False, new_run_id=None, error=message)
                )
            else:
                results.append(
                    models.BulkItem(run_id=run_id, ok=True, new_run_id=new_id, error=None)
                )
        return respond(models.BulkResult(action=body.action, results=results))

    async def list_events(self, request: Request) -> Response:
        query = _query(request, {"name", "limit", "cursor"})
        page = await self.app.list_events(
            name=query.get("name"), limit=_limit(query.get("limit")), cursor=query.get("cursor")
        )
        events = [encode.stored_event(e) for e in page]
        return respond(models.EventPage(events=events, next_cursor=page.next_cursor))

    async def get_event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        found = await self.app.get_event(event_id)
        if found is None:
            raise ApiError(404, f"no event has id {event_id!r}")
        runs = await self.app.runs_for_event(event_id)
        summaries = await self._summaries(runs)
        return respond(
            models.EventWithRuns(**encode.stored_event(found).model_dump(), runs=summaries)
        )

    async def send(self, request: Request) -> Response:
        payload = await read_json(request, self.max_body)
        ids = await self.app.send(payload)
        return respond(models.Sent(ids=ids, status=200))


# -- input parsing --------------------------------------------------------------------------
M = TypeVar("M", bound=models.Model)


def _model(model: type[M], body: Any) -> M:
    """The body as `model`, or a 400 that names each field that is wrong."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'the body'}: {e['msg']}" for e in exc.errors()
        )
        raise ApiError(400, f"the body is not valid: {problems}") from None


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
