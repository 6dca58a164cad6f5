"""Production mode: the SDK apps run with a signing key; calls are signed both ways."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from stepstone import ops
from stepstone.function import FunctionDef, function_from_config
from stepstone.sdk import signing
from tests.sdk import harness
from tests.sdk.host import FakeHost, SdkServer, one_invocation, sync

KEY = "signkey-test-" + "5e" * 32
OTHER = "signkey-test-" + "77" * 32


@pytest.fixture(scope="module", params=["py", "js"])
def signed_app(
    request: pytest.FixtureRequest, sdk_server: SdkServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[harness.SdkApp]:
    kind = request.param
    app = harness.start_app(
        kind,
        sdk_server.url,
        tmp_path_factory.mktemp(f"signed-{kind}"),
        signing_key=KEY,
        app_id=f"signed-{kind}",
    )
    try:
        yield app
    finally:
        app.stop()


async def test_a_signed_sync_and_run(
    signed_app: harness.SdkApp, sdk_server: SdkServer, http_client: httpx.AsyncClient
) -> None:
    functions = await sync(signed_app.url, sdk_server, signed_app.app_id)
    authorization = sdk_server.sync_headers[-1].get("authorization")
    key = signing.parse_signing_key(KEY)
    assert signing.check_bearer(authorization, key), authorization
    assert not signing.check_bearer(authorization, signing.parse_signing_key(OTHER))
    fake = FakeHost(functions, http_client, signing_key=key)
    result = await fake.run(
        signed_app.function_id("sequential"), {"name": "test/sequential", "data": {"start": 2}}
    )
    assert result.output == {"sum": 5}


@pytest.mark.parametrize("key", [OTHER, None], ids=["wrong-key", "unsigned"])
async def test_the_app_refuses_a_bad_signature(
    signed_app: harness.SdkApp,
    sdk_server: SdkServer,
    http_client: httpx.AsyncClient,
    key: str | None,
) -> None:
    functions = await sync(signed_app.url, sdk_server, signed_app.app_id)
    before = signed_app.effects()
    outcome = await one_invocation(
        functions[signed_app.function_id("sequential")], http_client, key=key
    ).execute()
    assert isinstance(outcome, ops.RunRetry), outcome
    assert outcome.error["message"] == "Unauthorized"
    assert signed_app.effects() == before  # no step ran


def fake_sdk(url: str) -> FunctionDef:
    return function_from_config(
        {
            "id": "fake-fn",
            "retries": 0,
            "triggers": [{"event": "test/sequential"}],
            "runtime": {"type": "http", "url": f"{url}/fake-sdk?fnId=fake-fn&stepId=step"},
        }
    )


@pytest.mark.parametrize("signature", ["t=1&s=00", None, "garbage"])
async def test_stepstone_refuses_an_answer_with_a_bad_signature(
    sdk_server: SdkServer, http_client: httpx.AsyncClient, signature: str | None
) -> None:
    sdk_server.answer_signature = signature
    try:
        outcome = await one_invocation(fake_sdk(sdk_server.url), http_client, key=KEY).execute()
    finally:
        sdk_server.answer_signature = None
    assert isinstance(outcome, ops.RunFailed), outcome
    assert outcome.error["name"] == "SignatureError"
    assert "was refused" in outcome.error["message"]


async def test_a_well_signed_answer_is_taken(
    sdk_server: SdkServer, http_client: httpx.AsyncClient
) -> None:
    key = signing.parse_signing_key(KEY)
    sdk_server.answer_signature = signing.sign(b'{"done":true}', key)
    try:
        outcome = await one_invocation(fake_sdk(sdk_server.url), http_client, key=KEY).execute()
    finally:
        sdk_server.answer_signature = None
    assert outcome == ops.RunCompleted('{"done": true}')
