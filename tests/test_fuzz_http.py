"""Fuzzing over HTTP, against a real server on SQLite and on PostgreSQL: 0 server errors,
and every answer as the server's own OpenAPI document describes it.

Two generators: schemathesis, from the live server's /v1/openapi.json (valid and invalid
requests for every operation), and hypothesis strategies for what JSON parsers and
databases choke on (lone surrogates, integers of thousands of digits, NULs).
`make test` runs a few hundred cases; `make chaos` (STEPSTONE_CHAOS=long) over 10,000.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from .live_server import LiveServer
from .pg_cluster import PostgresCluster
from .server_app import build_app
from .summary import note

LONG = os.environ.get("STEPSTONE_CHAOS") == "long"
SCHEMA_CASES = 6000 if LONG else 150  # per store
HOSTILE_CASES = 2500 if LONG else 100  # per store and test
pytestmark = [
    # the live server runs on threads of this process, and draws from `random` (retry
    # jitter, ids) while hypothesis generates a case: hypothesis then blames the strategy
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
    pytest.mark.timeout(3600 if LONG else 300),
]
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        template = request.getfixturevalue("postgres_template")
        url = cluster.url(cluster.create_database(template=template))
    with LiveServer(build_app(url), dev=True) as live:
        yield live


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(
    server: LiveServer, request: pytest.FixtureRequest
) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8  # the whole API, not an empty document
    cases = st.sampled_from(operations).flatmap(
        lambda op: st.one_of(
            op.as_strategy(generation_mode=GenerationMode.POSITIVE),
            op.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )
    )
    seen: dict[str, int] = {}

    @settings(FUZZ, max_examples=SCHEMA_CASES)
    @given(cases)
    def check(case: Any) -> None:
        label = f"{case.method} {case.path}"
        seen[label] = seen.get(label, 0) + 1
        response = case.call(base_url=server.url, timeout=30)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    check()
    # the cases above are drawn at random among the operations: any one hypothesis did not
    # draw gets a few of its own, so every operation is tried
    for op in operations:
        if f"{op.method.upper()} {op.path}" not in seen:
            settings(FUZZ, max_examples=10)(given(op.as_strategy())(check.hypothesis.inner_test))()
    assert len(seen) == len(operations), seen  # every operation was tried
    store = request.node.callspec.params["server"]
    note(f"{store}: fuzz: {sum(seen.values())} schemathesis cases over {len(seen)} operations")


# -- what parsers and databases choke on ------------------------------------------------
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),  # surrogates included
    st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff x", "\U0010ffff", "²", "%00"]),
)
# an integer of thousands of digits, which Python will not even write: a marker that
# _body replaces with the digits
huge_int = st.integers(4000, 6000).map(lambda digits: f"<huge {digits}>")
HUGE = re.compile(r'"<huge (\d+)>"')
numbers = st.one_of(st.integers(), huge_int, st.floats(allow_nan=False), st.just(2**63))
values = st.recursive(
    st.none() | st.booleans() | numbers | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)
events = st.fixed_dictionaries(
    {"name": st.one_of(st.just("test/echo"), hostile_text)},
    optional={"data": values, "id": st.one_of(hostile_text, values), "ts": numbers, "v": values},
)


def _body(payload: Any) -> bytes:
    # ensure_ascii writes a lone surrogate as \\ud800, as a JavaScript client would
    text = json.dumps(payload, ensure_ascii=True)
    return HUGE.sub(lambda found: "9" * int(found.group(1)), text).encode()


def _answered_cleanly(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.is_redirect:  # /v1/runs/ -> /v1/runs
        return
    body = response.json()
    if response.status_code >= 400:
        assert body["status"] == response.status_code and body["error"]


@pytest.mark.parametrize("path", ["/e/key", "/v1/events"])
def test_hostile_events_are_stored_or_refused_never_a_500(http: httpx.Client, path: str) -> None:
    @settings(FUZZ, max_examples=HOSTILE_CASES)
    @given(st.one_of(events, st.lists(events, max_size=3)))
    def check(payload: Any) -> None:
        body = _body(payload)
        response = http.post(path, content=body, headers={"content-type": "application/json"})
        _answered_cleanly(response)
        for event_id in response.json().get("ids", []) if response.status_code == 200 else []:
            stored = http.get(f"/v1/events/{quote(event_id, safe='')}")
            assert stored.status_code == 200, stored.text

    check()


@given(
    st.dictionaries(
        st.sampled_from(["limit", "cursor", "name", "status", "function", "created_after", "x"]),
        hostile_text,
        max_size=3,
    ),
    st.sampled_from(["/v1/runs", "/v1/events"]),
    hostile_text,
)
@settings(FUZZ, max_examples=HOSTILE_CASES)
def test_hostile_queries_and_paths_are_answered_never_a_500(
    http: httpx.Client, query: dict[str, str], path: str, name: str
) -> None:
    encoded = "&".join(
        f"{quote(k)}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in query.items()
    )
    _answered_cleanly(http.get(f"{path}?{encoded}"))
    _answered_cleanly(http.get(f"{path}/{quote(name.encode('utf-8', 'surrogatepass'), safe='')}"))


def test_the_fuzz_reached_the_cases_it_was_written_for() -> None:
    """The strategies really produce surrogates, NULs and huge integers."""
    found: set[str] = set()

    @settings(FUZZ, max_examples=300)
    @given(events)
    def look(event: Any) -> None:
        text = _body(event).decode()
        found.update(
            kind
            for kind, there in [
                ("surrogate", "\\ud8" in text or "\\udf" in text),
                ("nul", "\\u0000" in text),
                ("huge", any(len(w) > 4300 for w in text.replace(",", " ").split())),
            ]
            if there
        )

    look()
    assert found == {"surrogate", "nul", "huge"}
