"""Workload 6: events/s through the dev server's POST /e/{key}, with a minimal HTTP/1.1
client (also the SDK lane's HTTP floor, bench/sdk.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import stepstone

from .common import latency_summary


async def intake(url: str, max_events: int, max_time: float) -> dict[str, Any]:
    """Events/s through POST /e/{key} on the dev server (uvicorn in another process).

    The client is a minimal keep-alive HTTP/1.1 client on asyncio streams: a general
    client library would be the bottleneck on loopback, not the server.
    """
    from .common import free_port

    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.serve", url, str(port), stdout=subprocess.DEVNULL
    )
    out: dict[str, Any] = {}
    try:
        for _ in range(400):
            try:
                status, _body = await _http_once(port, "GET", "/health", b"")
                if status == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.05)
        for label, per_request in (("single", 1), ("batched_100", 100)):
            out[label] = await _post_events(port, per_request, max_events, max_time)
        out["keepalive"] = await _keepalive_requests(port, max_events, max_time)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)
    return out


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _http_once(port: int, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    conn = await _Connection.open(port)
    try:
        return await conn.request(method, path, body)
    finally:
        conn.close()


async def _post_events(
    port: int, per_request: int, max_events: int, max_time: float, clients: int = 16
) -> dict[str, float]:
    sent = 0
    requests = 0
    start = time.perf_counter()

    async def one_client() -> None:
        nonlocal sent, requests
        conn = await _Connection.open(port)
        try:
            while sent < max_events and time.perf_counter() - start < max_time:
                sent += per_request
                requests += 1
                body: Any = [
                    {"name": "bench/intake", "data": {"n": sent + i}} for i in range(per_request)
                ]
                if per_request == 1:
                    body = body[0]
                status, answer = await conn.request("POST", "/e/bench", json.dumps(body).encode())
                if status != 200:
                    raise RuntimeError(f"POST /e/bench answered {status}: {answer[:200]!r}")
        finally:
            conn.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    seconds = time.perf_counter() - start
    return {
        "events_per_s": sent / seconds,
        "requests_per_s": requests / seconds,
        "events": float(sent),
        "events_per_request": float(per_request),
        "clients": float(clients),
    }


async def _keepalive_requests(port: int, max_events: int, max_time: float) -> dict[str, Any]:
    """One client sending one event per request over one connection, as an SDK or a load
    balancer does: each request's time, the first one apart (it opens the connection)."""
    conn = await _Connection.open(port)
    took = []
    start = time.perf_counter()
    try:
        while len(took) < min(max_events, 2000) and time.perf_counter() - start < max_time:
            body = json.dumps({"name": "bench/intake", "data": {"n": len(took)}}).encode()
            sent = time.perf_counter()
            status, answer = await conn.request("POST", "/e/bench", body)
            took.append(time.perf_counter() - sent)
            if status != 200:
                raise RuntimeError(f"POST /e/bench answered {status}: {answer[:200]!r}")
    finally:
        conn.close()
    return {
        **latency_summary(took[1:]),
        "events_per_s": len(took) / (time.perf_counter() - start),
    }


def intake_app(url: str) -> stepstone.App:
    """The app the intake server runs: one function per event, and no worker."""
    app = stepstone.App("bench", database=url)

    @app.function(id="intake", trigger="bench/intake")
    async def run(ctx: stepstone.Context) -> None:
        return None

    return app
