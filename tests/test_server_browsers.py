"""Web pages may not drive the dev server through a developer's browser: DNS rebinding
(a foreign Host) and cross-site requests to /e and /v1 are refused; SDKs and curl work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .live_server import LiveServer
from .server_app import build_app

EVENT = {"name": "test/greet"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    app = build_app(f"sqlite:///{tmp_path / 'browsers.db'}")
    with LiveServer(app, dev=True, allowed_hosts=["dev.example.test"]) as live:
        yield live


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.mark.parametrize(
    "host",
    [
        *("localhost", "localhost:8288", "127.0.0.1:1", "[::1]:8288", "LOCALHOST."),
        *("app.localhost", "dev.example.test", "dev.example.test:80"),
    ],
)
def test_loopback_and_allowed_names_are_served(http: httpx.Client, host: str) -> None:
    assert http.get("/health", headers={"host": host}).status_code == 200
    assert http.post("/e/any", json=EVENT, headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8288", "127.0.0.2"])
def test_a_rebound_name_is_refused_everywhere(http: httpx.Client, host: str) -> None:
    for method, path in [("GET", "/"), ("GET", "/v1/runs"), ("POST", "/e/any")]:
        response = http.request(method, path, json=EVENT, headers={"host": host})
        assert response.status_code == 403, (method, path)
        message = response.json()["error"]
        assert message.startswith("the dev server answers to 127.0.0.1, ::1, dev.example.test")
        assert "--allowed-host" in message
    # nothing was stored by the refused POST
    assert http.get("/v1/events").json()["events"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site", "origin": "https://attacker.example"},
        {"origin": "https://attacker.example"},  # a browser without Fetch Metadata
        {"origin": "null"},  # a sandboxed frame or a file:// page
        {"sec-fetch-site": "cross-site"},
    ],
)
def test_pages_of_other_sites_cannot_send_events(
    http: httpx.Client, headers: dict[str, str]
) -> None:
    json_post = http.post("/e/any", json=EVENT, headers=headers)
    form_post = http.post(
        "/e/any",
        content=b'{"name": "test/greet"}',
        headers={**headers, "content-type": "text/plain"},
    )
    for response in (json_post, form_post):
        assert response.status_code == 403
        assert (
            response.json()["error"] == "the dev server refuses events sent by pages of other sites"
        )
    assert http.post("/v1/events", json=EVENT, headers=headers).status_code == 403
    assert http.get("/v1/events").json()["events"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {},  # SDKs and curl
        {"sec-fetch-site": "same-origin", "origin": "http://127.0.0.1:8288"},  # the dashboard
        {"sec-fetch-site": "same-site", "origin": "http://localhost:3000"},  # a local dev app
        {"sec-fetch-site": "none"},  # typed in the address bar
    ],
)
def test_sdks_curl_and_the_dashboard_still_send(
    http: httpx.Client, headers: dict[str, str]
) -> None:
    assert http.post("/e/any", json=EVENT, headers=headers).status_code == 200
    assert http.post("/v1/events", json=EVENT, headers=headers).status_code == 200


def test_following_a_link_to_the_dashboard_still_works(http: httpx.Client) -> None:
    link = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
    assert http.get("/", headers=link).status_code == 200
