"""The ASGI application. It calls the same App methods users call and adds no logic."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ConfigError, EventError, RunNotFoundError
from ..sdk.signing import parse_signing_key
from .api import Api
from .auth import Credentials
from .hosts import AllowedHosts, BrowserGuard
from .http import DEFAULT_MAX_BODY, ApiError, error_response
from .inputs import TextGuard
from .intake import Intake
from .metrics import metrics_routes
from .middleware import HttpMiddleware
from .probes import probe_routes
from .sdk_routes import SdkRoutes

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("stepstone.http")
STATIC = Path(__file__).parent / "static"


def create_app(
    app: App,
    *,
    dev: bool,
    event_keys: Sequence[str] = (),
    api_token: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    allowed_hosts: Sequence[str] = (),
    signing_key: str | None = None,
) -> Starlette:
    """The HTTP side of `app`: event intake, REST API under /v1 and the dashboard at /.

    Outside dev mode an API token and at least one event key are required (ConfigError),
    and SDK apps sync (POST /fn/register) with the `signing_key`'s bearer token. In dev
    mode only loopback names and `allowed_hosts` are served, and pages of other sites may
    not use /e or /v1 through a visitor's browser.
    """
    credentials = Credentials(dev=dev, event_keys=event_keys, api_token=api_token)
    sdk_key = None if signing_key is None else parse_signing_key(signing_key)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "app": app.id, "dev": dev, "auth": not credentials.api_open}
        )

    async def dashboard(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    routes: list[BaseRoute] = [
        *Intake(app, credentials, max_body).routes(),
        *Api(app, credentials, max_body).routes(),
        *SdkRoutes(app, dev=dev, signing_key=sdk_key, max_body=max_body).routes(),
        Route("/health", health, methods=["GET"]),
        *probe_routes(app),
        *metrics_routes(app, None if credentials.api_open else credentials),
        Route("/", dashboard, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(HttpMiddleware), Middleware(TextGuard)]
    if dev:
        middleware.append(Middleware(BrowserGuard, allowed=AllowedHosts(allowed_hosts)))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            EventError: _bad_input,
            ConfigError: _bad_input,
            RunNotFoundError: _not_found,
            Exception: _internal_error,
        },
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, f"nothing is served at {request.method} {request.url.path}")
    if exc.status_code == 405:
        return error_response(405, f"{request.method} is not allowed on {request.url.path}")
    return error_response(exc.status_code, str(exc.detail))


async def _bad_input(request: Request, exc: Exception) -> Response:
    return error_response(400, str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, str(exc))


async def _internal_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal error; the server's log has the details")
