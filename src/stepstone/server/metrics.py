"""GET /metrics: this process's Prometheus metrics, with the backlog read from the
database at each scrape (stepstone.metrics has the rest)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import metrics
from .auth import Credentials
from .http import error_response

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("stepstone.http")
BACKLOG_TIMEOUT = 5.0  # seconds the database has to count the backlog for a scrape


def metrics_routes(app: App, credentials: Credentials | None) -> list[BaseRoute]:
    """The /metrics route; with `credentials`, behind the API token (`stepstone start`)."""

    async def scrape(request: Request) -> Response:
        if credentials is not None and not credentials.token_ok(
            request.headers.get("authorization")
        ):
            return error_response(
                401,
                "missing or wrong API token: send 'Authorization: Bearer <token>'",
                {"www-authenticate": "Bearer"},
            )
        if not metrics.ENABLED:
            return error_response(
                501, "metrics need prometheus-client: pip install 'stepstone[metrics]'"
            )
        try:
            due, age = await asyncio.wait_for(app.backlog(), BACKLOG_TIMEOUT)
        except Exception as exc:  # the rest is still worth scraping
            log.warning("metrics: could not read the backlog: %s", exc)
        else:
            metrics.backlog(due, age)
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return [Route("/metrics", scrape, methods=["GET"])]
