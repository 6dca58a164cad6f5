"""stepstone.testing as users meet it: stubs that name real steps, and a pytest plugin
that needs no configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import stepstone
from stepstone.testing import run_function

ROOT = Path(__file__).resolve().parent.parent

app = stepstone.App("helpers", database="memory://", backoff=lambda attempt: 0.01)


@app.function(id="trial", trigger="trial/started")
async def trial(ctx: stepstone.Context) -> dict[str, str]:
    user = await ctx.step.run("load-user", lambda: {"plan": "real"})
    for _ in range(2):
        await ctx.step.run("ping", lambda: "pong")
    await ctx.step.sleep("trial-period", "7d")
    return {"plan": user["plan"]}


async def test_a_stub_for_a_step_the_function_never_calls_names_the_real_ones() -> None:
    with pytest.raises(stepstone.ConfigError) as caught:
        await run_function(app, "trial", {"name": "trial/started"}, steps={"load-usr": {}})
    message = str(caught.value)
    assert "function 'trial' never called the stubbed step(s) 'load-usr'" in message
    assert "the steps it called: 'load-user', 'ping', 'ping:1', 'trial-period'" in message
    assert "(the run ended completed)" in message


async def test_stubs_by_their_real_ids_and_repeats_are_used() -> None:
    run = await run_function(
        app,
        "trial",
        {"name": "trial/started"},
        steps={"load-user": {"plan": "stub"}, "ping:1": "stubbed", "trial-period": None},
    )
    assert run.status == "completed" and run.output == {"plan": "stub"}


async def test_wait_for_run_says_the_run_is_retrying_and_with_what() -> None:
    retrying = stepstone.App("retrying", database="memory://", backoff=lambda attempt: 60)

    @retrying.function(id="flaky", trigger="t/flaky")
    async def flaky(ctx: stepstone.Context) -> None:
        def call() -> None:
            raise ConnectionError("the upstream refused the connection")

        await ctx.step.run("call", call)

    async with retrying.worker(poll_interval=0.01):
        [event_id] = await retrying.send({"name": "t/flaky"})
        [run] = await retrying.runs_for_event(event_id)
        with pytest.raises(TimeoutError) as caught:
            await retrying.wait_for_run(run.id, timeout=0.5)
    await retrying.close()
    assert str(caught.value) == (
        f"run {run.id} (flaky) is still running after 0.5s: it is retrying after "
        "ConnectionError: the upstream refused the connection"
    )


USER_TESTS = """
import stepstone
from stepstone.testing import run_function

app = stepstone.App("user", database="memory://")


@app.function(id="welcome", trigger="user/created")
async def welcome(ctx):
    await ctx.step.sleep("wait-a-day", "1d")
    return await ctx.step.run("send-email", lambda: "sent")


async def test_async_without_any_configuration(stepstone_clock):
    start = stepstone_clock.now()
    run = await run_function(app, "welcome", {"name": "user/created"}, clock=stepstone_clock)
    assert run.output == "sent"
    assert stepstone_clock.now() - start >= 86400


def test_sync_with_the_fixture(stepstone_run):
    run = stepstone_run(app, "welcome", {"name": "user/created"}, steps={"send-email": "stub"})
    assert run.output == "stub"
"""


@pytest.mark.parametrize("others", [["-p", "no:asyncio", "-p", "no:anyio"], []])
def test_users_tests_need_no_configuration(tmp_path: Path, others: list[str]) -> None:
    """A user's project with no pytest configuration: without pytest-asyncio, and with it
    in its default (strict) mode, where it leaves unmarked async tests alone."""
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *others, "test_user.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout and "warning" not in done.stdout.lower(), done.stdout
