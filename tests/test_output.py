"""What stepstone prints and logs: no password in any form, no data read as markup, no
control character passed through."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from stepstone.cli import main
from stepstone.output import printable, redact_url

from .live_server import LiveServer
from .server_app import build_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:s3cret@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:p%zz@db/x", "postgresql://u:***@db/x"),
        ("postgresql://u:a@b@db/x", "postgresql://u:***@db/x"),  # an unescaped @ in it
        (
            "postgresql://u:pw@h1:5432,h2/x?sslmode=require",
            "postgresql://u:***@h1:5432,h2/x?sslmode=require",
        ),
        (
            "postgresql://db/x?password=s3cret&sslmode=off",
            "postgresql://db/x?password=***&sslmode=off",
        ),
        ("postgresql://db/x?sslpassword=s3cret", "postgresql://db/x?sslpassword=***"),
        ("postgresql://db/x?PASS%57ORD=s3cret", "postgresql://db/x?PASS%57ORD=***"),
        ("host=db password=s3cret dbname=x", "host=db password=*** dbname=x"),
        ("host=db password = 's3 cret' dbname=x", "host=db password = *** dbname=x"),
        ("postgresql://[::1/x?password=s3cret", "postgresql://***"),  # not a URL at all
        ("sqlite:///a/b.db", "sqlite:///a/b.db"),
        ("postgresql://db/x?port=1?password=s3cret", "postgresql://db/x?port=1?password=***"),
    ],
)
def test_every_form_of_password_is_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_control_characters_and_bidi_overrides_are_escaped() -> None:
    assert printable("a\x00b\x1b[31mc\r\n\u202ed") == "a\\x00b\\x1b[31mc\\x0d\\x0a\\u202ed"
    assert printable("plain text, accents é and 字") == "plain text, accents é and 字"


def _run_and_capture(args: list[str], env: dict[str, str]) -> str:
    process = subprocess.run(
        [sys.executable, "-m", "stepstone", *args],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return process.stdout + process.stderr


def test_a_percent_in_a_password_is_never_echoed() -> None:
    """libpq quotes the text around a bad %XX, and the pool logged it at every retry."""
    url = "postgresql://u:p%zzS3cret@127.0.0.1:1/x"
    output = _run_and_capture(["worker", "tests.server_app:app", "-d", url], {})
    assert "has a % that starts no %XX escape: write a % in a password" in output
    assert "S3cret" not in output


def test_a_password_in_the_query_is_not_in_the_banner_or_the_log(postgres_url: str) -> None:
    url = postgres_url + "&password=Qu3ry-Secret"
    output = subprocess.Popen(
        [sys.executable, "-m", "stepstone", "worker", "tests.server_app:app", "-d", url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert output.stdout is not None
    lines = []
    for line in output.stdout:
        lines.append(line)
        if "functions" in line:
            break
    output.terminate()
    rest, _ = output.communicate(timeout=30)
    text = "".join(lines) + rest
    assert "password=***" in text  # the banner and the worker's log line
    assert "Qu3ry-Secret" not in text


HOSTILE = "bad [/] [link=https://evil.example]click[/link] [bold]loud\x1b]8;;https://evil\x07"


def test_stepstone_run_prints_hostile_text_as_it_is(tmp_path: Path) -> None:
    """An error containing [/] crashed it with rich's MarkupError; markup in data made links."""
    database = f"sqlite:///{tmp_path / 'hostile.db'}"
    app = build_app(database)

    async def broken_run() -> str:
        async with app.worker(poll_interval=0.05):
            [event_id] = await app.send({"name": "test/broken", "data": {"message": HOSTILE}})
            for _ in range(400):
                [run] = await app.runs_for_event(event_id)
                if run.status.value == "failed":
                    return run.id
                await asyncio.sleep(0.02)
        raise AssertionError("the run did not fail")

    run_id = asyncio.run(broken_run())
    asyncio.run(app.close())
    result = CliRunner().invoke(
        main, ["run", "tests.server_app:app", "-d", database, run_id], env={"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    assert "bad [/] [link=https://evil.example]click[/link] [bold]loud\\x1b]8;;" in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output


def test_the_access_log_escapes_decoded_paths(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = build_app(f"sqlite:///{tmp_path / 'log.db'}")
    caplog.set_level(logging.DEBUG, logger="stepstone.http")
    with LiveServer(app, dev=True) as server, server.client() as http:
        assert http.get("/v1/runs/a%00b%1B%0Ac").status_code == 400
    [line] = [
        r.getMessage()
        for r in caplog.records
        if r.name == "stepstone.http" and "/v1/runs/" in r.getMessage()
    ]
    assert line.startswith("GET /v1/runs/a\\x00b\\x1b\\x0ac 400 ")
