"""Fixtures: the official SDKs' apps as real processes, and a server they sync to.

The SDKs are installed on first use into a cache outside the source tree (harness.py);
a registry that cannot be reached fails these tests, it never skips them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stepstone.function import FunctionDef
from tests.sdk import harness
from tests.sdk.host import SdkServer, sync


@pytest.fixture(scope="session")
def sdk_server() -> Iterator[SdkServer]:
    server = SdkServer().start()
    try:
        yield server
    finally:
        server.stop()


def _start(kind: str, server: SdkServer, workdir: Path) -> harness.SdkApp:
    try:
        return harness.start_app(kind, server.url, workdir)
    except harness.SdkInstallError as exc:
        pytest.fail(f"could not install the {kind} SDK: {exc}", pytrace=False)


def _app_fixture(kind: str) -> Any:
    @pytest.fixture(scope="session")
    def fixture(
        sdk_server: SdkServer, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[harness.SdkApp]:
        app = _start(kind, sdk_server, tmp_path_factory.mktemp(f"{kind}-app"))
        try:
            yield app
        finally:
            app.stop()

    return fixture


py_app = _app_fixture("py")
js_app = _app_fixture("js")


@pytest.fixture(params=["py", "js"])
def sdk_app(request: pytest.FixtureRequest) -> harness.SdkApp:
    """Each test that takes it runs once against the Python app and once against the npm one."""
    app: harness.SdkApp = request.getfixturevalue(f"{request.param}_app")
    return app


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def functions(sdk_app: harness.SdkApp, sdk_server: SdkServer) -> dict[str, FunctionDef]:
    """The app's functions, synced to the test server by a PUT, as stepstone defines them."""
    return await sync(sdk_app.url, sdk_server, sdk_app.app_id)
