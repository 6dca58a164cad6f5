"""Input the stores cannot take is a 400 saying what is wrong, the same on SQLite and
PostgreSQL, and the connection stays open (a 500 closed it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .live_server import LiveServer
from .server_app import build_app

HUGE = "9" * 5000
NUL = "must not hold a NUL character (\\u0000)"


@pytest.fixture(params=["sqlite", "postgres"])
def http(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[httpx.Client]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bad.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with LiveServer(build_app(url), dev=True) as server, server.client() as client:
        yield client


BODIES = {
    "a 5,000-digit integer": (
        b'{"name": "test/echo", "data": {"n": ' + HUGE.encode() + b"}}",
        "the body is not valid JSON: an integer has more than 4300 digits",
    ),
    "a lone surrogate in data": (
        b'{"name": "test/echo", "data": {"s": "\\ud800"}}',
        "event 0: 'data' contains a lone surrogate (\\ud800): it is not Unicode text",
    ),
    "a lone surrogate in a key": (
        b'{"name": "test/echo", "data": {"\\udfff": 1}}',
        "event 0: 'data' contains a lone surrogate (\\udfff): it is not Unicode text",
    ),
    "a lone surrogate in the name": (
        b'{"name": "test/\\ud800"}',
        "event 0: 'name' contains a lone surrogate (\\ud800): it is not Unicode text",
    ),
    "a NUL in the name": (
        b'{"name": "test/\\u0000echo"}',
        "event 0: 'name' must not hold a NUL character (\\u0000)",
    ),
    "a NUL in the id": (
        b'{"name": "test/echo", "id": "a\\u0000b"}',
        "event 0: 'id' must not hold a NUL character (\\u0000)",
    ),
    "a NUL in v": (
        b'{"name": "test/echo", "v": "\\u0000"}',
        "event 0: 'v' must not hold a NUL character (\\u0000)",
    ),
    "ts of 2^63": (
        b'{"name": "test/echo", "ts": 9223372036854775808}',
        "event 0: 'ts' must be milliseconds since the epoch (an integer from 0 to "
        "253402300799999, the end of year 9999)",
    ),
    "ts of 1e30": (
        b'{"name": "test/echo", "ts": 1e30}',
        "event 0: 'ts' must be milliseconds since the epoch (an integer from 0 to "
        "253402300799999, the end of year 9999)",
    ),
}


@pytest.mark.parametrize("case", list(BODIES))
def test_a_bad_event_is_a_400_saying_why(http: httpx.Client, case: str) -> None:
    body, says = BODIES[case]
    for path in ("/e/key", "/v1/events"):
        response = http.post(path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"] == says
    assert http.get("/v1/events").json()["events"] == []
    assert http.get("/health").status_code == 200  # on the same connection


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/v1/runs?limit=%C2%B2", "limit must be an integer from 1 to 1000; got '²'"),
        ("/v1/events?limit=%D9%A3", "limit must be an integer from 1 to 1000; got '٣'"),
        ("/v1/events?name=a%00b", f"the query parameter name {NUL}"),
        ("/v1/runs?cursor=%00", f"the query parameter cursor {NUL}"),
        ("/v1/runs/a%00b", "the path must not hold a NUL character (\\u0000)"),
        ("/v1/events/%00", "the path must not hold a NUL character (\\u0000)"),
        ("/v1/runs?created_after=1e30", "created_after must be a time before the year 10000"),
    ],
)
def test_a_bad_query_or_path_is_a_400_saying_why(http: httpx.Client, path: str, says: str) -> None:
    response = http.get(path)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == says


def test_the_largest_allowed_values_are_stored_and_read_back(http: httpx.Client) -> None:
    big = int("9" * 4000)
    event = {"name": "test/echo", "id": "max", "ts": 253402300799999, "data": {"n": big}}
    assert http.post("/v1/events", json=event).status_code == 200
    stored = http.get("/v1/events/max").json()
    assert stored["ts"] == 253402300799999
    assert stored["data"] == {"n": big}
