"""`POST /fn/register`: apps written with the official SDKs sync their functions here.

The SDKs POST their app when their serve URL gets a PUT (shared/WIRE.md, "Sync"). The app
is stored and its functions published in one transaction, replacing what the app had
published before, so a re-sync drops the functions it no longer has. Outside dev mode the
request must carry the signing key's bearer token (either SDK's form).

Answers: the npm SDK takes the status of the user's PUT from the body's `status`, and the
Python SDK hands the body back verbatim, so both read `{"ok", "status", "error"}`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import AppIdTakenError
from ..sdk import register
from ..sdk.signing import SigningKey, check_bearer
from ..store import SyncedAppRecord
from .http import ApiError, read_body

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("stepstone.http")


class SdkRoutes:
    def __init__(
        self, app: App, *, dev: bool, signing_key: SigningKey | None, max_body: int
    ) -> None:
        self.app = app
        self.dev = dev
        self.signing_key = signing_key
        self.max_body = max_body

    def routes(self) -> list[Route]:
        return [Route("/fn/register", self.register, methods=["POST"])]

    def _authorize(self, request: Request) -> None:
        if self.dev:
            return
        if self.signing_key is None:
            raise ApiError(
                401, "this server takes no SDK syncs: start it with STEPSTONE_SIGNING_KEY set"
            )
        if not check_bearer(request.headers.get("authorization"), self.signing_key):
            raise ApiError(401, "the sync's Authorization does not match the server's signing key")

    async def register(self, request: Request) -> Response:
        self._authorize(request)  # before a byte of the body is read
        body = await read_body(request, self.max_body)
        now = self.app.clock.now()
        try:
            payload = register.parse_register(body)
        except register.RegisterError as exc:
            raise ApiError(400, str(exc)) from None
        record = SyncedAppRecord(
            id=payload.app_name,
            url=payload.url,
            sdk=payload.sdk,
            framework=payload.framework,
            app_version=payload.app_version,
            synced_at=now,
        )
        store = await self.app.store()
        try:
            try:
                synced = register.translate(payload)
            except register.RegisterError as exc:
                log.warning("sync of app %r refused: %s", payload.app_name, exc)
                await store.save_app(replace(record, error=str(exc)), None)
                raise ApiError(400, str(exc)) from None
            await store.save_app(record, synced.functions)
        except AppIdTakenError as exc:
            log.warning("sync of app %r refused: %s", payload.app_name, exc)
            raise ApiError(409, str(exc)) from None
        await self.app.runtime.registry.refresh(store, force=True)
        log.info(
            "synced app %r (%s, %d functions) from %s",
            synced.app_id,
            synced.sdk,
            len(synced.functions),
            synced.url,
        )
        return JSONResponse(register.register_ok())
