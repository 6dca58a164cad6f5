"""Probes for load balancers and Kubernetes: /healthz (the process is up) and /readyz (the
database answers and its schema is current), never behind a token; and the small ASGI app
a worker without the HTTP API serves them on (`stepstone worker --metrics-port`)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..store import redact_url

if TYPE_CHECKING:
    import uvicorn

    from ..app import App

log = logging.getLogger("stepstone.http")
READY_TIMEOUT = 5.0  # seconds the database has to answer the readiness probe


def probe_routes(app: App) -> list[BaseRoute]:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers={"cache-control": "no-store"})

    async def readyz(request: Request) -> Response:
        headers = {"cache-control": "no-store"}
        try:
            pending = await asyncio.wait_for(app.pending_migrations(), READY_TIMEOUT)
        except Exception as exc:
            log.warning(
                "not ready: the database %s does not answer: %s", redact_url(app.database_url), exc
            )
            return JSONResponse(
                {"status": "unavailable", "reason": "the database does not answer"},
                status_code=503,
                headers=headers,
            )
        if pending:
            versions = ", ".join(f"{v:04d}" for v in pending)
            return JSONResponse(
                {
                    "status": "unavailable",
                    "reason": f"the database schema lacks migrations {versions}",
                },
                status_code=503,
                headers=headers,
            )
        return JSONResponse({"status": "ready"}, headers=headers)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]


def worker_app(app: App) -> Starlette:
    """What `stepstone worker --metrics-port` serves: the probes and /metrics, no API."""
    from .metrics import metrics_routes

    return Starlette(routes=[*probe_routes(app), *metrics_routes(app, None)])


def make_worker_server(app: App) -> uvicorn.Server:
    import uvicorn

    config = uvicorn.Config(
        worker_app(app),
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    return uvicorn.Server(config)
