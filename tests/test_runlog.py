"""The worker's log: one line per run event that matters, a failing step's traceback once."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

import stepstone
from stepstone import logformat
from stepstone.durations import format_duration

from .helpers import send_and_wait

ROOT = Path(__file__).resolve().parent.parent


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "stepstone.runs"]


async def test_a_failing_step_logs_each_attempt_and_its_traceback_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="stepstone.runs")
    app = stepstone.App("logs", database="memory://", backoff=lambda attempt: 0.05)

    def broken() -> None:
        raise ValueError("the disk is on fire")

    @app.function(id="fragile", trigger="t/go", retries=2)
    async def fragile(ctx: stepstone.Context) -> None:
        await ctx.step.run("fine", lambda: 1)
        await ctx.step.run("burn", broken)

    async with app.worker(poll_interval=0.01):
        run = await send_and_wait(app, "t/go")
    await app.close()
    assert run.status == "failed"
    records = _lines(caplog)
    by_event = [(r.stepstone["event"], r.levelno) for r in records]  # type: ignore[attr-defined]
    assert by_event[0] == ("run.started", logging.INFO)
    assert ("step.completed", logging.DEBUG) in by_event
    assert by_event.count(("step.retrying", logging.WARNING)) == 2
    assert ("step.failed", logging.WARNING) in by_event
    assert by_event[-1] == ("run.failed", logging.ERROR)
    retries = [r for r in records if r.stepstone["event"] == "step.retrying"]  # type: ignore[attr-defined]
    first, second = (r.getMessage() for r in retries)
    assert f"fragile {run.id} step 'burn' failed (attempt 1 of 3): ValueError: " in first
    assert "the disk is on fire; next attempt at " in first
    assert "Traceback (most recent call last)" in first and "def broken" not in first
    assert 'raise ValueError("the disk is on fire")' in first
    assert "(attempt 2 of 3)" in second and "Traceback" not in second
    # the traceback came once: neither the last attempt nor the run's end repeat it
    assert sum("Traceback" in r.getMessage() for r in records) == 1
    end = records[-1]
    assert end.getMessage().startswith(f"fragile {run.id} failed after ")
    assert end.stepstone["error"] == {  # type: ignore[attr-defined]
        "name": "ValueError",
        "message": "the disk is on fire",
    }
    assert "the disk is on fire" in end.getMessage()


async def test_completed_and_cancelled_runs_say_so_with_function_id_and_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="stepstone.runs")
    app = stepstone.App("logs", database="memory://")

    @app.function(id="quick", trigger="t/quick")
    async def quick(ctx: stepstone.Context) -> int:
        return await ctx.step.run("one", lambda: 1)

    @app.function(id="sleepy", trigger="t/sleepy")
    async def sleepy(ctx: stepstone.Context) -> None:
        await ctx.step.sleep("nap", "1h")

    async with app.worker(poll_interval=0.01):
        done = await send_and_wait(app, "t/quick")
        [event_id] = await app.send({"name": "t/sleepy"})
        [run] = await app.runs_for_event(event_id)
        while (await app.get_run(run.id)).status != "sleeping":  # type: ignore[union-attr]
            await asyncio.sleep(0.01)
        await app.cancel(run.id)
        cancelled = await app.wait_for_run(run.id)
    await app.close()
    assert cancelled.status == "cancelled"
    messages = [r.getMessage() for r in _lines(caplog)]
    assert f"quick {done.id} started by t/quick" in messages
    assert any(
        m.startswith(f"quick {done.id} completed in ") and m.endswith(" ms") for m in messages
    )
    assert any(m.startswith(f"sleepy {run.id} cancelled after ") for m in messages)
    # DEBUG lines (each step) are not there at INFO
    assert not any("step 'one' completed" in m for m in messages)


def test_durations_read_as_people_write_them() -> None:
    assert format_duration(0.0004) == "0.4 ms"
    assert format_duration(0.012) == "12 ms"
    assert format_duration(1.23) == "1.2 s"
    assert format_duration(185) == "3 min 5 s"
    assert (format_duration(59.99), format_duration(0.9999)) == ("1 min", "1.0 s")
    assert format_duration(7200) == "2 h"
    assert format_duration(3 * 86400 + 3600) == "3 d 1 h"


def test_json_format_is_one_object_per_line_with_the_run_fields() -> None:
    stream = io.StringIO()
    logformat.configure("info", "json", stream)
    try:
        logging.getLogger("stepstone.runs").warning(
            "f r1 step 'x' failed\nTraceback (most recent call last):\n  boom",
            extra={"stepstone": {"event": "step.retrying", "run_id": "r1", "function_id": "f"}},
        )
    finally:
        logging.getLogger().handlers.clear()
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "warning"
    assert record["message"] == "f r1 step 'x' failed"
    assert record["stack"].startswith("Traceback")
    assert (record["event"], record["run_id"], record["function_id"]) == (
        "step.retrying",
        "r1",
        "f",
    )


def test_a_worker_process_logs_plain_lines_or_json(tmp_path: Path) -> None:
    """`stepstone worker` with its output piped: plain lines by default, JSON when asked."""
    app_file = tmp_path / "logged.py"
    app_file.write_text(
        "import stepstone\n"
        "app = stepstone.App('logged')\n"
        "@app.function(id='hello', trigger='t/hello')\n"
        "async def hello(ctx):\n"
        "    return await ctx.step.run('greet', lambda: 'hi')\n"
    )
    for fmt in ("plain", "json"):
        database = f"sqlite:///{tmp_path / (fmt + '.db')}"
        args = ["worker", f"{app_file}:app", "-d", database]
        # the option goes before the command, or after it
        args = ["--log-format", fmt, *args] if fmt == "plain" else [*args, "--log-format", fmt]
        worker = subprocess.Popen(
            [sys.executable, "-m", "stepstone", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            send = [sys.executable, "-m", "stepstone", "send", f"{app_file}:app", "t/hello"]
            subprocess.run([*send, "-d", database], cwd=ROOT, check=True, capture_output=True)
            deadline = time.monotonic() + 30
            output = ""
            assert worker.stderr is not None
            while "completed" not in output and time.monotonic() < deadline:
                output += worker.stderr.readline()
        finally:
            worker.terminate()
            worker.communicate(timeout=30)
        lines = [line for line in output.splitlines() if "stepstone.runs" in line]
        assert len(lines) == 2, output
        if fmt == "plain":
            assert (
                " INFO    stepstone.runs: hello " in lines[0] and "started by t/hello" in lines[0]
            )
            assert "completed in" in lines[1]
        else:
            started, completed = (json.loads(line) for line in lines)
            assert started["event"] == "run.started" and started["function_id"] == "hello"
            assert completed["event"] == "run.completed" and completed["duration"] >= 0
            assert completed["run_id"] == started["run_id"]
