"""Syncing an SDK app by its URL: a PUT to its serve endpoint makes the SDK POST its
functions to this server's /fn/register (the app must point at this server with
INNGEST_BASE_URL)."""

from __future__ import annotations

import httpx

SYNC_TIMEOUT = 30.0


class SyncError(Exception):
    """The app did not sync: unreachable, or it said why not."""


async def sync_app(url: str, *, dev: bool, client: httpx.AsyncClient | None = None) -> None:
    """Ask the SDK app served at `url` to sync to this server."""
    headers = {"X-Inngest-Server-Kind": "dev" if dev else "cloud"}
    owned = client is None
    http = client or httpx.AsyncClient(timeout=SYNC_TIMEOUT)
    try:
        answer = await http.put(url, headers=headers)
    except httpx.HTTPError as exc:
        raise SyncError(f"could not reach the app at {url}: {exc}") from None
    finally:
        if owned:
            await http.aclose()
    # the npm SDK puts the sync's own status in the body; the Python one answers 200
    try:
        body = answer.json()
    except ValueError:
        body = None
    status = body.get("status", answer.status_code) if isinstance(body, dict) else None
    error = body.get("error") or body.get("message") if isinstance(body, dict) else None
    if answer.status_code >= 400 or (isinstance(status, int) and status >= 400) or error:
        detail = error or answer.text[:300] or f"HTTP {answer.status_code}"
        raise SyncError(f"the app at {url} did not sync: {detail}")
