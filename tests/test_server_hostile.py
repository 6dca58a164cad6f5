"""The HTTP server against clients that idle, trickle, flood or send oversized heads.

Real sockets against a real uvicorn server: in a thread with short limits, and as a
`stepstone start` process whose descriptor table is small enough to run full.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from stepstone.server import ServerLimits
from stepstone.server.logs import RateLimit

from .live_server import LiveServer
from .server_app import build_app

ROOT = Path(__file__).resolve().parent.parent
# short enough for tests to wait them out
SHORT = {"header_timeout": 1.0, "body_timeout": 1.0, "keep_alive": 1.0, "max_connections": 40}
# `stepstone` in a process whose descriptor table holds `argv[1]` files
LIMITED = (
    "import resource, runpy, sys; n = int(sys.argv.pop(1)); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "runpy.run_module('stepstone', run_name='__main__')"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    app = build_app(f"sqlite:///{tmp_path / 'hostile.db'}")
    with LiveServer(app, dev=True, limits=ServerLimits(**SHORT)) as live:  # type: ignore[arg-type]
        yield live


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - started


def _trickle(sock: socket.socket, data: bytes, seconds: float) -> None:
    """Send `data` a byte at a time, four a second, for at most `seconds` (or until refused)."""
    started = time.monotonic()
    for byte in data:
        if time.monotonic() - started > seconds:
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return
        time.sleep(0.25)


def test_an_idle_connection_is_closed_after_the_header_timeout(server: LiveServer) -> None:
    with _connect(server.url) as sock:
        answer, took = _read_all(sock)
    assert answer == b""  # nothing was asked: closed without an answer
    assert 0.8 < took < 5


BODY = b'{"name": "test/greet", "data": {}}'
POST_HEAD = b"POST /e/key HTTP/1.1\r\nhost: localhost\r\ncontent-length: %d\r\n\r\n" % len(BODY)


@pytest.mark.parametrize(
    ("sent", "trickled", "says"),
    [
        (b"", b"GET /health HTTP/1.1\r\nhost: localhost\r\n", b"the request head took over 1s"),
        (POST_HEAD, BODY, b"the request body took over 1s"),
    ],
    ids=["head", "body"],
)
def test_a_request_trickled_at_a_few_bytes_a_second_is_answered_408(
    server: LiveServer, sent: bytes, trickled: bytes, says: bytes
) -> None:
    with _connect(server.url) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        _trickle(sock, trickled, seconds=1.5)
        answer, _ = _read_all(sock)
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert says in answer
    assert took < 5


def test_a_keep_alive_connection_is_closed_when_idle(server: LiveServer) -> None:
    with _connect(server.url) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        answer, took = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert 0.8 < took < 5


def test_a_head_over_the_limit_is_answered_431(server: LiveServer) -> None:
    with _connect(server.url) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nhost: localhost\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n"
        )
        answer, _ = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert b"over the limit of 16384 bytes" in answer


def test_idle_connections_past_the_limit_make_room_for_new_ones(server: LiveServer) -> None:
    with ExitStack() as stack:
        idle = [stack.enter_context(_connect(server.url)) for _ in range(120)]
        # the API answers although three times the limit of connections were opened
        with server.client() as http:
            for _ in range(5):
                assert http.get("/health").status_code == 200
        # the oldest idle connections were closed to make room
        idle[0].settimeout(5)
        assert idle[0].recv(1) == b""


def test_a_busy_server_past_the_limit_answers_503(server: LiveServer) -> None:
    """When every connection is in the middle of a request, a new one is refused.

    The held requests' bodies have 1 s: on a loaded machine the server may read their
    heads late, or time the first ones out before the new connection comes, and then
    there is room for it. So the whole scene is tried again, a few times; a server that
    never refuses fails every try."""
    head = b"POST /e/key HTTP/1.1\r\nhost: localhost\r\ncontent-length: 10\r\n\r\n"
    answers = []
    for wait in (0.5, 0.3, 0.7, 0.2, 0.5):
        with ExitStack() as stack:
            for _ in range(40):  # each holds a request open: its body has not come yet
                stack.enter_context(_connect(server.url)).sendall(head)
            time.sleep(wait)  # the server reads their heads; their bodies have 1 s
            with _connect(server.url) as sock:
                answer, _ = _read_all(sock)
        answers.append(answer[:40])
        if answer.startswith(b"HTTP/1.1 503 "):
            assert b"retry-after: 1" in answer
            return
        time.sleep(1.5)  # the held requests time out and close before the next try
    raise AssertionError(f"no 503 in {len(answers)} tries: {answers}")


def test_keep_alive_requests_answer_without_waiting_for_nagle(server: LiveServer) -> None:
    """Without TCP_NODELAY each request after the first on a connection took ~44 ms."""
    with server.client() as http:
        http.get("/health")
        took = []
        for _ in range(20):
            started = time.perf_counter()
            response = http.get("/health")  # no database: only the network's time
            took.append(time.perf_counter() - started)
            assert response.status_code == 200
    assert statistics.median(took) < 0.030, took


@contextmanager
def _start_process(tmp_path: Path, max_files: int) -> Iterator[tuple[str, Path]]:
    """`stepstone start` with at most `max_files` descriptors; yields its URL and its log."""
    log_path = tmp_path / "server.log"
    database = f"sqlite:///{tmp_path / 'flood.db'}"
    args = ["start", "tests.server_app:app", "-d", database, "--host", "127.0.0.1", "--port", "0"]

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
        "STEPSTONE_EVENT_KEYS": "flood-key",
        "STEPSTONE_API_TOKEN": "flood-token",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", LIMITED, str(max_files), *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r" on (http://\S+)", log_path.read_text())):
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield found.group(1), log_path
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_a_flood_of_connections_neither_stops_the_api_nor_floods_the_log(
    tmp_path: Path,
) -> None:
    """Before the limits, ~20,000 idle sockets filled the descriptor table: the API stopped
    answering and asyncio logged a traceback per failed accept (112 MB in 30 s)."""
    with _start_process(tmp_path, max_files=256) as (url, log_path):
        size_before = log_path.stat().st_size
        with ExitStack() as stack:
            flood = []
            for _ in range(1500):  # six times the server's whole descriptor table
                sock = socket.socket()
                stack.enter_context(sock)
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1])))
                flood.append(sock)
            # and garbage on some of them: each is an "invalid HTTP request" warning
            for sock in flood[-300:]:
                with suppress(OSError):
                    sock.send(b"NOT HTTP\r\n\r\n")
            time.sleep(1)
            with httpx.Client(base_url=url, timeout=10) as http:
                for _ in range(5):
                    assert http.get("/health").status_code == 200
                assert http.post("/e/flood-key", json={"name": "test/greet"}).status_code == 200
        grown = log_path.stat().st_size - size_before
    log = log_path.read_text()
    assert "Too many open files" not in log
    assert grown < 20_000, log[-5000:]


def test_the_noisy_loggers_pass_a_few_records_of_a_kind_per_window() -> None:
    now = [0.0]
    limit = RateLimit(burst=3, window=60, clock=lambda: now[0])

    def passes(msg: str) -> list[str]:
        record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)
        return [str(record.msg)] if limit.filter(record) else []

    passed = [line for _ in range(1000) for line in passes("accept failed")]
    assert passed == ["accept failed"] * 3
    assert passes("another kind") == ["another kind"]
    now[0] = 61.0
    assert passes("accept failed") == ["accept failed (997 more like this were not logged)"]
