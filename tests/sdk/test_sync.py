"""The real SDK apps sync to stepstone's own server (POST /fn/register) by a PUT."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import stepstone
from stepstone.function import function_from_config
from stepstone.store import Store, store_from_url
from tests.live_server import LiveServer
from tests.sdk import harness

KEY = "signkey-prod-" + "a1" * 32
OTHER = "signkey-prod-" + "b2" * 32


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'stepstone.db'}"


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    opened = store_from_url(database)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def dev_server(database: str) -> Iterator[LiveServer]:
    with LiveServer(stepstone.App("sync-tests", database=database), dev=True) as server:
        yield server


@pytest.fixture
def prod_server(database: str) -> Iterator[LiveServer]:
    app = stepstone.App("sync-tests", database=database)
    options: dict[str, Any] = {"signing_key": KEY}
    with LiveServer(app, dev=False, event_keys=["ek"], api_token="tok", **options) as server:
        yield server


class Apps:
    """SDK apps started for one test, stopped at its end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[harness.SdkApp] = []

    def start(self, kind: str, server: LiveServer, **options: Any) -> harness.SdkApp:
        app = harness.start_app(kind, server.url, self.workdir, **options)
        self.started.append(app)
        return app


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Apps]:
    started = Apps(tmp_path)
    try:
        yield started
    finally:
        for app in started.started:
            app.stop()


async def put(app: harness.SdkApp) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.put(app.url, timeout=30)


@pytest.mark.parametrize("kind", ["py", "js"])
async def test_an_app_syncs_and_a_resync_drops_what_it_no_longer_has(
    kind: str, dev_server: LiveServer, apps: Apps, store: Store
) -> None:
    app = apps.start(kind, dev_server)
    answer = await put(app)
    assert answer.status_code == 200, answer.text
    [synced] = await store.list_apps()
    assert (synced.id, synced.url, synced.error) == (f"{kind}-app", app.url, None)
    assert synced.sdk == {"py": "py:v0.5.19", "js": "js:v4.24.0"}[kind]
    configs = {c["id"]: c for c in await store.registered_functions()}
    sequential = function_from_config(configs[f"{kind}-app-sequential"])
    assert sequential.runtime is not None
    assert sequential.runtime.url == f"{app.url}?fnId={kind}-app-sequential&stepId=step"
    assert sequential.retries == 4
    assert f"{kind}-app-failing-failure" in configs
    app.stop()

    smaller = apps.start(kind, dev_server, extra_env={"SDK_TEST_FUNCTIONS": "sequential,flaky"})
    assert (await put(smaller)).status_code == 200
    ids = sorted(c["id"] for c in await store.registered_functions())
    assert ids == [f"{kind}-app-flaky", f"{kind}-app-sequential"]


@pytest.mark.parametrize("kind", ["py", "js"])
async def test_a_signed_server_takes_syncs_with_its_key_only(
    kind: str, prod_server: LiveServer, apps: Apps, store: Store
) -> None:
    good = apps.start(kind, prod_server, signing_key=KEY, app_id=f"{kind}-good")
    assert (await put(good)).status_code == 200
    bad = apps.start(kind, prod_server, signing_key=OTHER, app_id=f"{kind}-bad")
    answer = await put(bad)
    if kind == "js":  # the npm SDK takes the PUT's status from the server's answer
        assert answer.status_code == 401, answer.text
    else:  # the Python SDK answers 200 with the server's body (a bug of py 0.5.19)
        assert answer.json()["status"] == 401
    assert "signing key" in answer.text
    assert [a.id for a in await store.list_apps()] == [f"{kind}-good"]


GOLDEN = Path(__file__).parent / "golden"


async def post_register(
    database: str, body: bytes, *, dev: bool, key: str | None, auth: str | None = None
) -> httpx.Response:
    from stepstone.server.asgi import create_app

    app = stepstone.App("sync-tests", database=database)
    options: dict[str, Any] = {} if dev else {"event_keys": ["ek"], "api_token": "tok"}
    asgi = create_app(app, dev=dev, signing_key=key, **options)
    headers = {} if auth is None else {"authorization": auth}
    try:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.post("/fn/register", content=body, headers=headers)
    finally:
        await app.close()


async def test_a_bad_payload_is_refused_with_what_is_wrong(database: str, store: Store) -> None:
    answer = await post_register(database, b'{"url": "http://a"}', dev=True, key=None)
    assert answer.status_code == 400
    body = answer.json()
    assert body["status"] == 400
    assert "sdk: Field required" in body["error"] and "functions: Field required" in body["error"]


async def test_an_sdk_app_cannot_take_the_id_of_a_python_app(database: str, store: Store) -> None:
    native = stepstone.App("js-app", database=database)  # the golden JS app's id

    @native.function(id="native-fn", trigger="native/go")
    async def native_fn(ctx: stepstone.Context) -> None:
        return None

    async with native.worker():  # a worker publishes the Python app's functions
        pass
    await native.close()
    payload = (GOLDEN / "register_js.json").read_bytes()
    answer = await post_register(database, payload, dev=True, key=None)
    assert answer.status_code == 409, answer.text
    assert "taken by a Python app (stepstone.App('js-app'))" in answer.json()["error"]
    assert [c["id"] for c in await store.registered_functions()] == ["native-fn"]
    assert await store.list_apps() == []
    # and a Python app cannot start under a synced SDK app's id
    answer = await post_register(
        database, payload.replace(b'"js-app"', b'"web-app"'), dev=True, key=None
    )
    assert answer.status_code == 200, answer.text
    clash = stepstone.App("web-app", database=database)

    @clash.function(id="clash-fn", trigger="native/go")
    async def clash_fn(ctx: stepstone.Context) -> None:
        return None

    with pytest.raises(stepstone.AppIdTakenError, match="id of an SDK app synced"):
        async with clash.worker():
            pass
    await clash.close()


async def test_a_sync_stepstone_cannot_run_is_recorded_with_its_error(
    database: str, store: Store
) -> None:
    payload = (GOLDEN / "register_js.json").read_text().replace('"http"', '"ws"', 1)
    answer = await post_register(database, payload.encode(), dev=True, key=None)
    assert answer.status_code == 400
    assert "(connect) is not supported" in answer.json()["error"]
    [app] = await store.list_apps()
    assert app.id == "js-app" and app.error is not None and "connect" in app.error
    assert await store.registered_functions() == []


@pytest.mark.parametrize(
    ("key", "auth", "status"),
    [
        (KEY, None, 401),
        (KEY, "Bearer nope", 401),
        (None, None, 401),  # no signing key configured: no syncs outside dev mode
        (KEY, "py", 200),
        (KEY, "js", 200),
    ],
)
async def test_the_bearer_token_outside_dev_mode(
    database: str, key: str | None, auth: str | None, status: int
) -> None:
    from stepstone.sdk.signing import bearer_token, parse_signing_key

    token = bearer_token(parse_signing_key(KEY))
    header = {"py": f"Bearer {token}", "js": f"Bearer signkey-prod-{token}"}.get(auth or "", auth)
    body = (GOLDEN / "register_py.json").read_bytes()
    answer = await post_register(database, body, dev=False, key=key, auth=header)
    assert answer.status_code == status, answer.text
    assert answer.json()["status"] == status
