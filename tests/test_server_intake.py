"""Event intake (POST /e/{key}) and API tokens, on a real server outside dev mode."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from stepstone.errors import ConfigError
from stepstone.server import create_app

from .live_server import LiveServer, wait_for_run
from .server_app import build_app

KEY = "key-Zq8rT1"
OTHER_KEY = "second-key-Yw4"
TOKEN = "token-Hx93kPq0Lm"
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("intake") / "stepstone.db"
    app = build_app(f"sqlite:///{path}")
    with LiveServer(
        app, dev=False, event_keys=[KEY, OTHER_KEY], api_token=TOKEN, max_body=MAX_BODY
    ) as live:
        yield live


@pytest.fixture
def anon(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@pytest.fixture
def authed(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(TOKEN) as http:
        yield http


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    message: str = body["error"]
    return message


def _event_count(authed: httpx.Client) -> int:
    return len(authed.get("/v1/events", params={"limit": "1000"}).json()["events"])


# -- intake --------------------------------------------------------------------------------------
def test_one_event_starts_a_run(anon: httpx.Client, authed: httpx.Client) -> None:
    response = anon.post(f"/e/{KEY}", json={"name": "test/greet", "data": {"name": "cy"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 200
    [event_id] = body["ids"]
    [run] = authed.get(f"/v1/events/{event_id}").json()["runs"]
    assert wait_for_run(authed, run["id"])["output"] == {"said": "HELLO CY"}


def test_an_array_of_events_gets_ids_in_order(anon: httpx.Client, authed: httpx.Client) -> None:
    batch = [{"name": "test/batch", "id": f"batch-{n}", "data": {"n": n}} for n in range(3)]
    response = anon.post(f"/e/{OTHER_KEY}", json=batch)
    assert response.json() == {"ids": ["batch-0", "batch-1", "batch-2"], "status": 200}
    assert authed.get("/v1/events/batch-2").json()["data"] == {"n": 2}
    # the same id again is accepted and ignored
    again = anon.post(f"/e/{KEY}", json={"name": "test/batch", "id": "batch-0", "data": {"n": 9}})
    assert again.json()["ids"] == ["batch-0"]
    assert authed.get("/v1/events/batch-0").json()["data"] == {"n": 0}


@pytest.mark.parametrize("path", ["/e/wrong-key", f"/e/{KEY}x", f"/e/{KEY[:-1]}", "/e/", "/e"])
def test_wrong_or_missing_key_is_refused(
    anon: httpx.Client, authed: httpx.Client, path: str
) -> None:
    before = _event_count(authed)
    message = _error(anon.post(path, json={"name": "test/greet"}), 401)
    assert "key" in message and KEY not in message
    assert _event_count(authed) == before


def test_a_bad_event_in_a_batch_stores_nothing(anon: httpx.Client, authed: httpx.Client) -> None:
    batch = [{"name": "test/greet", "id": "good-one"}, {"name": "test/greet", "data": "oops"}]
    message = _error(anon.post(f"/e/{KEY}", json=batch), 400)
    assert message == "event 1: 'data' must be a JSON object, got str"
    assert _error(authed.get("/v1/events/good-one"), 404)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"name": "test/greet"', "the body is not valid JSON"),
        (b"", "the body is empty"),
        (b"42", "expected an Event, a dict or a list of them, got int"),
        (b'[{"name": "ok"}, 7]', "event 1: expected an object, got int"),
        (b'{"name": ""}', "'name' is required"),
        (b'{"name": "a", "user": []}', "'user' must be an object"),
        (b'{"name": "a", "id": 5}', "'id' must be a string"),
        (b'{"name": "a", "ts": 1.5}', "'ts' must be milliseconds"),
        (b'{"name": "a", "ts": true}', "'ts' must be milliseconds"),
        (b'{"name": "a", "v": 2}', "'v' must be a string"),
        (b'{"name": "a", "data": {"x": NaN}}', "not valid JSON: NaN is not a JSON value"),
        (b'{"name": "a", "data": {"x": -Infinity}}', "-Infinity is not a JSON value"),
    ],
)
def test_malformed_events_are_refused(
    anon: httpx.Client, authed: httpx.Client, body: bytes, says: str
) -> None:
    before = _event_count(authed)
    assert says in _error(anon.post(f"/e/{KEY}", content=body), 400)
    assert _event_count(authed) == before


def test_too_many_events_are_refused(anon: httpx.Client) -> None:
    batch = [{"name": "x"}] * 5001
    body = json.dumps(batch, separators=(",", ":")).encode()
    assert len(body) < MAX_BODY
    message = _error(anon.post(f"/e/{KEY}", content=body), 400)
    assert message == "5001 events in one request, over the limit of 5000"


def test_an_oversized_body_is_refused_before_it_is_sent(server: LiveServer) -> None:
    # only the headers go out: the answer comes without the server waiting for the body
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            f"POST /e/{KEY} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body) == {
        "error": f"the body is {100 * 1024 * 1024} bytes, over the limit of {MAX_BODY}",
        "status": 413,
    }


def test_an_oversized_chunked_body_is_refused(anon: httpx.Client) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'[{"name": "big", "data": {"x": "'
        for _ in range(40):
            sent += 8192
            yield b"a" * 8192
        yield b'"}}]'

    message = _error(anon.post(f"/e/{KEY}", content=chunks()), 413)
    assert message == f"the body is over the limit of {MAX_BODY} bytes"


def test_a_wrong_content_length_is_refused(server: LiveServer) -> None:
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(f"POST /e/{KEY} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".encode())
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")


# -- the API token -------------------------------------------------------------------------------
ENDPOINTS = [
    ("GET", "/v1/functions"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/some-run"),
    ("POST", "/v1/runs/some-run/cancel"),
    ("POST", "/v1/runs/some-run/rerun"),
    ("GET", "/v1/events"),
    ("POST", "/v1/events"),
    ("GET", "/v1/events/some-event"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer",
        f"Bearer {KEY}",
    ],
)
def test_api_needs_the_token(
    anon: httpx.Client, method: str, path: str, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = anon.request(method, path, headers=headers, json={"name": "test/greet"})
    message = _error(response, 401)
    assert "Authorization: Bearer" in message and TOKEN not in message
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_token_opens_the_api(authed: httpx.Client) -> None:
    functions = authed.get("/v1/functions").json()["functions"]
    assert "greet" in [f["id"] for f in functions]
    [event_id] = authed.post("/v1/events", json={"name": "test/nap"}).json()["ids"]
    [run] = authed.get(f"/v1/events/{event_id}").json()["runs"]
    wait_for_run(authed, run["id"], "sleeping")
    assert authed.post(f"/v1/runs/{run['id']}/cancel").status_code == 200
    assert authed.post(f"/v1/runs/{run['id']}/rerun").status_code == 200
    lower = {"authorization": f"bearer {TOKEN}"}
    assert authed.get("/v1/runs", headers=lower).status_code == 200


def test_public_paths_need_no_token(anon: httpx.Client) -> None:
    assert anon.get("/").status_code == 200
    assert anon.get("/static/app.js").status_code == 200
    assert anon.get("/v1/openapi.json").json()["openapi"].startswith("3.")
    assert anon.get("/health").json()["auth"] is True


def test_keys_and_tokens_are_never_logged(
    server: LiveServer, anon: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    anon.post(f"/e/{KEY}", json={"name": "test/greet"})
    anon.post(f"/e/{KEY}", content=b"{broken")
    anon.post("/e/not-a-key-Qq1", json={"name": "test/greet"})
    anon.get("/v1/runs", headers={"authorization": f"Bearer {TOKEN}"})
    anon.get("/v1/runs", headers={"authorization": "Bearer guess-Ww2"})

    def server_side() -> str:
        # the server's loggers (the test's own HTTP client logs its URLs, keys included)
        records = [r for r in caplog.records if r.name.startswith(("stepstone", "uvicorn"))]
        return "\n".join(f"{r.name} {r.getMessage()}" for r in records)

    # a request's access line is written once its answer went out: it may come a moment
    # after the client has the answer
    deadline = time.monotonic() + 10
    while "GET /v1/runs 401" not in server_side() and time.monotonic() < deadline:
        time.sleep(0.02)
    text = server_side()
    assert "POST /e/*** 200" in text  # the access log ran, with the key redacted
    assert "GET /v1/runs 401" in text
    for secret in (KEY, TOKEN, "not-a-key-Qq1", "guess-Ww2"):
        assert secret not in text


def test_outside_dev_mode_a_token_and_a_key_are_required() -> None:
    app = build_app("memory://")
    with pytest.raises(ConfigError, match="STEPSTONE_API_TOKEN"):
        create_app(app, dev=False, event_keys=[KEY], api_token=None)
    with pytest.raises(ConfigError, match="STEPSTONE_API_TOKEN"):
        create_app(app, dev=False, event_keys=[KEY], api_token="")
    with pytest.raises(ConfigError, match="STEPSTONE_EVENT_KEYS"):
        create_app(app, dev=False, event_keys=[], api_token=TOKEN)
