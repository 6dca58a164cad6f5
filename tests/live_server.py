"""A real HTTP server (uvicorn) with a worker, on a free port, in a background thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

import stepstone
from stepstone.server import bind, make_server


class LiveServer:
    def __init__(
        self,
        app: stepstone.App,
        *,
        dev: bool,
        event_keys: Sequence[str] = (),
        api_token: str | None = None,
        **server_options: Any,
    ) -> None:
        self.app = app
        self.token = api_token
        self._server = make_server(
            app, dev=dev, event_keys=event_keys, api_token=api_token, **server_options
        )
        self._sock = bind("127.0.0.1", 0)
        host, port = self._sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="live-server", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(setattr, self._server, "should_exit", True)
        self._thread.join(30)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with self.app.worker(poll_interval=0.05):
            task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
            self._ready.set()  # the socket already listens: connections wait for accept
            await task
        await self.app.close()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {} if token is None else {"authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "a condition") -> Any:
    """Poll `check` until it returns something truthy; a safety net, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def wait_for_run(client: httpx.Client, run_id: str, *statuses: str) -> dict[str, Any]:
    """The run once its status is one of `statuses` (default: any final status)."""
    wanted = set(statuses or ("completed", "failed", "cancelled", "skipped"))

    def check() -> dict[str, Any] | None:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        return run if run.get("status") in wanted else None

    result: dict[str, Any] = wait_for(check, what=f"run {run_id} to be {', '.join(wanted)}")
    return result


def send_one(client: httpx.Client, name: str, data: dict[str, Any] | None = None) -> str:
    """Send one event through the API; return the id of the one run it started."""
    response = client.post("/v1/events", json={"name": name, "data": data or {}})
    assert response.status_code == 200, response.text
    [event_id] = response.json()["ids"]
    runs = client.get(f"/v1/events/{event_id}").json()["runs"]
    assert len(runs) == 1, runs
    run_id: str = runs[0]["id"]
    return run_id
