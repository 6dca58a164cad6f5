"""Captures the golden files of tests/sdk/golden/ from the real SDK apps.

`python -m tests.sdk.capture_golden` starts both apps, syncs them, runs some of their
functions through RemoteInvocation and writes what the SDKs sent: their sync payloads
(register_{py,js}.json) and their answers to call requests (answers_{py,js}.json), which
the protocol's golden tests parse. Rerun it when the pinned SDK versions change.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.sdk import harness
from tests.sdk.host import FakeHost, SdkServer, sync

GOLDEN = Path(__file__).parent / "golden"
RUNS = [
    ("sequential", {"name": "test/sequential", "data": {"start": 5}}),
    ("flaky", {"name": "test/flaky"}),
    ("parallel", {"name": "test/parallel"}),
    ("sleeper", {"name": "test/sleeper"}),
    ("waiter", {"name": "test/waiter", "data": {"order": 1}}),
    ("nonretriable", {"name": "test/nonretriable"}),
    ("catcher", {"name": "test/catcher"}),
    ("invoker", {"name": "test/invoker"}),
    ("sender", {"name": "test/sender"}),
]


async def capture(kind: str, server: SdkServer, workdir: Path) -> None:
    app = harness.start_app(kind, server.url, workdir)
    answers: list[dict[str, Any]] = []

    async def record(response: httpx.Response) -> None:
        await response.aread()
        request = json.loads(response.request.content)
        answers.append(
            {
                "function": response.request.url.params.get("fnId"),
                "step_id": response.request.url.params.get("stepId"),
                "request_ctx": request["ctx"],
                "status": response.status_code,
                "headers": {
                    k: v
                    for k, v in response.headers.items()
                    if k.startswith("x-inngest-") or k == "retry-after"
                },
                "body": response.text,
            }
        )

    try:
        functions = await sync(app.url, server, app.app_id)
        (GOLDEN / f"register_{kind}.json").write_text(
            json.dumps(server.last_sync(app.app_id), indent=1) + "\n"
        )
        async with httpx.AsyncClient(event_hooks={"response": [record]}) as client:
            host = FakeHost(
                functions,
                client,
                on_wait=lambda record: {
                    "name": "test/approved",
                    "data": {"order": 1, "by": "bo"},
                    "id": "e1",
                    "ts": 1,
                },
            )
            for fn, event in RUNS:
                await host.run(app.function_id(fn), event)
        (GOLDEN / f"answers_{kind}.json").write_text(json.dumps(answers, indent=1) + "\n")
    finally:
        app.stop()


async def main() -> None:
    server = SdkServer().start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for kind in ("py", "js"):
                await capture(kind, server, Path(workdir))
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
