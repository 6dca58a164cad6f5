"""The seed document's own example, an npm app (`inngest.createFunction(...)` with
`step.run` and `Promise.all` of steps, served by Express: tests/sdk_apps/seed_app.cjs),
synced to a real stepstone dev server by PUT and run from its events to completion."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import make_app
from tests.live_server import LiveServer, wait_for, wait_for_run
from tests.sdk import harness


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, harness.SdkApp]]:
    workdir: Path = tmp_path_factory.mktemp("seed-on-stepstone")
    app = make_app(f"sqlite:///{workdir / 'stepstone.db'}")
    with (
        LiveServer(app, dev=True) as server,
        harness.synced_app(
            "js", server.url, workdir, app_id="seed-app", source="seed_app.cjs"
        ) as sdk,
    ):
        yield server, sdk


def _run(client: httpx.Client, name: str, data: dict[str, Any], function: str) -> dict[str, Any]:
    sent = client.post("/e/dev-key", json=[{"name": name, "data": data}])
    assert sent.status_code == 200, sent.text
    [event_id] = sent.json()["ids"]

    def found() -> str | None:
        runs = client.get(f"/v1/events/{event_id}").json()["runs"]
        return next((r["id"] for r in runs if r["function_id"] == function), None)

    run_id = wait_for(found, what=f"a run of {function}")
    wait_for_run(client, run_id)
    run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
    return run


def _sha1(step_id: str) -> str:
    return hashlib.sha1(step_id.encode()).hexdigest()


def test_the_sync_publishes_the_seed_functions(running: tuple[LiveServer, harness.SdkApp]) -> None:
    server, sdk = running
    with server.client() as client:
        listed = {fn["id"] for fn in client.get("/v1/functions").json()["functions"]}
    assert {sdk.function_id("import-product-images"), sdk.function_id("create-user")} <= listed


def test_import_product_images_as_the_seed_shows_it(
    running: tuple[LiveServer, harness.SdkApp],
) -> None:
    server, sdk = running
    urls = ["https://cdn.example/a.png", "https://cdn.example/b.jpg"]
    with server.client() as client:
        run = _run(
            client,
            "shop/product.imported",
            {"imageURLs": urls},
            sdk.function_id("import-product-images"),
        )
    assert run["status"] == "completed", run
    assert run["output"] is None  # the seed's function returns nothing
    [step] = run["steps"]
    assert (step["id"], step["hashed_id"]) == ("copy-images-to-s3", _sha1("copy-images-to-s3"))
    assert step["status"] == "completed" and step["attempts"] == 1
    assert step["output"] == ["s3://product-images/a.png", "s3://product-images/b.jpg"]
    assert sdk.effects().count("copy-images-to-s3") == 1


def test_the_seeds_steps_and_promise_all_run_once_each(
    running: tuple[LiveServer, harness.SdkApp],
) -> None:
    server, sdk = running
    with server.client() as client:
        run = _run(
            client, "shop/user.signed-up", {"email": "ann@x.io"}, sdk.function_id("create-user")
        )
    assert run["status"] == "completed", run
    output = run["output"]
    data = {"name": "ANN", "email": "ann@x.io"}
    assert output["data"] == data
    assert output["subscription"] == {"plan": "free", "user": output["user"]["id"]}
    assert output["crm"] == "crm:ann@x.io"
    assert output["email"] == "welcome sent to ann@x.io"
    # a Date returned by a step comes back as its JSON form
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", output["user"]["createdAt"])

    steps = {s["id"]: s for s in run["steps"]}
    sequential = ["get-api-data", "transform", "insert-data", "create-user"]
    parallel = ["create-subscription", "add-to-crm", "send-welcome-email"]
    assert [s["id"] for s in run["steps"]][:4] == sequential
    assert sorted(steps) == sorted(sequential + parallel)
    for step_id, step in steps.items():
        assert step["hashed_id"] == _sha1(step_id), step
        assert step["status"] == "completed" and step["attempts"] == 1, step
    assert steps["get-api-data"]["output"] == {"name": "ann", "email": "ann@x.io"}
    assert steps["transform"]["output"] == data
    assert steps["insert-data"]["output"] is None
    assert steps["create-user"]["output"] == output["user"]
    # the three steps of Promise.all were planned together and called on their own
    last_sequential = steps["create-user"]["ended_at"]
    assert all(steps[s]["started_at"] >= last_sequential for s in parallel)

    effects = [line for line in sdk.effects() if line != "copy-images-to-s3"]
    inserted = [line for line in effects if line.startswith("insert-data:")]
    assert [json.loads(line.removeprefix("insert-data:")) for line in inserted] == [data]
    assert sorted(line for line in effects if line not in inserted) == sorted(
        ["get-api-data", "transform", "create-user", *parallel]
    )
