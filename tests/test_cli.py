"""The command line as a new user meets it, through click.testing and real processes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import stepstone
from stepstone.app import DEFAULT_DATABASE
from stepstone.cli import main
from tests.apps import clidemo

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.apps.clidemo:app"


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env={"COLUMNS": "120", **(env or {})}).invoke(main, list(args))


@pytest.fixture(autouse=True)
def _default_database() -> Iterator[None]:
    """`-d` sets the shared demo app's database: each test starts from the default."""
    clidemo.app.database_url = DEFAULT_DATABASE
    yield
    clidemo.app.database_url = DEFAULT_DATABASE


@pytest.fixture
def demo(sqlite_url: str) -> Iterator[str]:
    clidemo.app.database_url = sqlite_url
    yield sqlite_url
    asyncio.run(clidemo.app.close())


def _populate(url: str) -> dict[str, str]:
    """Runs of each kind in the database at `url`: their ids by function."""

    async def go() -> dict[str, str]:
        app = clidemo.app
        app.database_url = url
        ids: dict[str, str] = {}
        async with app.worker(poll_interval=0.01):
            for name, data in [("demo/greet", {"name": "ada"}), ("demo/broken", {})]:
                [event_id] = await app.send({"name": name, "data": data})
                [run] = await app.runs_for_event(event_id)
                await app.wait_for_run(run.id)
                ids[run.function_id] = run.id
            [event_id] = await app.send({"name": "demo/stubborn"})
            [run] = await app.runs_for_event(event_id)
            ids["stubborn"] = run.id
            ids["event"] = event_id
            while not (await app.get_run(run.id)).steps:  # type: ignore[union-attr]
                await asyncio.sleep(0.01)
        await app.close()
        return ids

    return asyncio.run(go())


# -- mistakes: one line, exit code 2 ---------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["runs", "nosuch:app"], "no module named 'nosuch'"),
        (["runs", "tests.apps.clidemo:nope"], "has no stepstone.App named 'nope'; its apps: app"),
        (["runs", "missing/file.py:app"], "there is no file"),
        (["runs", APP, "--status", "done"], "'done' is not one of 'queued', 'running'"),
        (["--log-level", "verbose", "runs", APP], "'verbose' is not one of 'debug', 'info'"),
        (["dev", APP, "--port", "99999"], "99999 is not in the range 0<=x<=65535"),
        (["send", APP], "write: stepstone send MODULE:APP NAME"),
        (["send", APP, "demo/greet", "--data", "[1]"], "must be a JSON object"),
        (["send", APP, "demo/greet", "--data", "{oops"], "not JSON"),
        (["rerun", APP], "give RUN_IDs or --status"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
    ],
)
def test_each_mistake_is_one_line_and_exit_code_2(
    args: list[str], says: str, tmp_path: Path
) -> None:
    result = cli(*args, "-d", f"sqlite:///{tmp_path / 'x.db'}") if "-d" not in args else cli(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and says in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_version_and_short_help() -> None:
    result = cli("--version")
    assert result.exit_code == 0 and re.fullmatch(r"stepstone, version \S+\n", result.stdout)
    for args in (["-h"], ["runs", "-h"], ["send", "-h"]):
        result = cli(*args)
        assert result.exit_code == 0 and result.stdout.startswith("Usage: "), result.output
    assert "events" in cli("-h").stdout and "functions" in cli("-h").stdout


def test_a_module_that_fails_to_import_its_own_dependency_shows_that_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "needs_dep.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("runs", "needs_dep:app")
    assert isinstance(result.exception, ModuleNotFoundError)
    assert result.exception.name == "no_such_dependency_xyz"


# -- which database ------------------------------------------------------------------------
def test_reading_commands_refuse_a_database_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "x.db"
    for command in (["runs", APP], ["run", APP, "R1"], ["events", APP], ["cancel", APP, "R1"]):
        result = cli(*command, "-d", f"sqlite:///{missing}")
        assert result.exit_code == 2, result.output
        assert f"no database at {missing} (given with --database)" in result.stderr
    assert not missing.parent.exists()  # nothing was created


def test_the_default_database_is_named_with_the_directory_it_depends_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    result = cli("runs", APP)
    expected = tmp_path / ".stepstone" / "stepstone.db"
    assert result.exit_code == 2
    assert f"no database at {expected} (the app's own URL, relative to {tmp_path})" in (
        result.stderr
    )
    # the app reads the variable when it is created: a real process, then
    env = {**os.environ, "STEPSTONE_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "stepstone", "runs", APP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"no database at {tmp_path / 'env.db'} (from $STEPSTONE_DATABASE_URL)" in done.stderr


def test_every_command_names_its_database_with_the_password_hidden(demo: str) -> None:
    _populate(demo)
    path = demo.removeprefix("sqlite:///")
    for command in (["runs", APP], ["events", APP], ["functions", APP]):
        result = cli(*command, "-d", demo)
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines()[0] == f"database {demo}", result.stderr
        assert path in result.stderr
    result = cli("functions", APP, "-d", "postgresql://me:hunter2@127.0.0.1:1/nowhere")
    assert "hunter2" not in result.output and "me:***@127.0.0.1" in result.output


def test_send_warns_when_it_creates_a_database_and_no_worker_takes_the_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'new.db'}"
    try:
        result = cli("send", APP, "demo/greet", "-d", url)
    finally:
        asyncio.run(clidemo.app.close())
    assert result.exit_code == 0, result.output
    assert "does not exist: sending creates a new, empty database there" in result.stderr
    assert "warning: no worker has taken run " in result.stderr
    assert "is a worker running on" in result.stderr and "stepstone worker MODULE:APP" in (
        result.stderr
    )
    assert re.match(r"event \w+: runs \w+", result.stdout)


# -- reading -------------------------------------------------------------------------------
def test_runs_lists_full_ids_and_says_when_there_are_none(demo: str) -> None:
    asyncio.run(_create_empty(demo))
    result = cli("runs", APP, "-d", demo)
    assert result.exit_code == 0 and result.stdout.strip() == "no runs yet"
    ids = _populate(demo)
    result = cli("runs", APP, "-d", demo, env={"COLUMNS": "60"})  # a narrow terminal
    for run_id in (ids["greet"], ids["broken"], ids["stubborn"]):
        assert run_id in result.stdout, result.stdout
    result = cli("runs", APP, "-d", demo, "--status", "skipped")
    assert result.stdout.strip() == "no runs matching these filters"
    listed = json.loads(cli("runs", APP, "-d", demo, "--json").stdout)
    assert {r["id"] for r in listed} == {ids["greet"], ids["broken"], ids["stubborn"]}
    assert json.loads(cli("runs", APP, "-d", demo, "--json", "--status", "failed").stdout)[0][
        "error"
    ]["message"] == (clidemo.LONG)


async def _create_empty(url: str) -> None:
    app = stepstone.App("empty", database=url)
    await app.store()
    await app.close()


def test_run_shows_the_error_whole_local_dates_and_durations(demo: str) -> None:
    ids = _populate(demo)
    result = cli("run", APP, ids["broken"], "-d", demo, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())
    assert " ".join(clidemo.LONG.split()) in flat  # the whole message, wrapped, never cut
    assert "Traceback (most recent call last)" in result.stdout
    run = json.loads(cli("run", APP, ids["broken"], "-d", demo, "--json").stdout)
    created = datetime.fromtimestamp(run["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
    assert created in result.stdout
    assert str(run["created_at"]) not in result.stdout  # no raw epoch floats
    assert re.search(r"\(took \d+(\.\d)? m?s\)", result.stdout), result.stdout
    assert run["status"] == "failed" and run["error"]["message"] == clidemo.LONG
    assert [s["id"] for s in run["steps"]] == ["call-upstream"]
    # a run still retrying shows its last error
    result = cli("run", APP, ids["stubborn"], "-d", demo)
    assert "last error (still retrying)" in result.stdout
    assert "ConnectionError: upstream refused the connection" in result.stdout
    result = cli("run", APP, "NOPE", "-d", demo)
    assert result.exit_code == 2 and "no run has id NOPE" in result.stderr


def test_events_lists_them_and_shows_one_with_its_runs(demo: str) -> None:
    ids = _populate(demo)
    result = cli("events", APP, "-d", demo)
    assert result.exit_code == 0, result.output
    assert ids["event"] in result.stdout and "demo/stubborn" in result.stdout
    result = cli("events", APP, ids["event"], "-d", demo)
    assert result.exit_code == 0, result.output
    assert ids["stubborn"] in result.stdout and "stubborn" in result.stdout
    shown = json.loads(cli("events", APP, ids["event"], "-d", demo, "--json").stdout)
    assert shown["name"] == "demo/stubborn" and [r["id"] for r in shown["runs"]] == [
        ids["stubborn"]
    ]
    listed = json.loads(cli("events", APP, "-d", demo, "--json", "--name", "demo/greet").stdout)
    assert [e["name"] for e in listed] == ["demo/greet"]
    result = cli("events", APP, "-d", demo, "--name", "nothing/like/it")
    assert result.stdout.strip() == "no events matching this name"
    result = cli("events", APP, "NOPE", "-d", demo)
    assert result.exit_code == 2 and "no event has id NOPE" in result.stderr


def test_functions_show_triggers_and_options(demo: str) -> None:
    result = cli("functions", APP, "-d", demo)  # no database yet: the app's own functions
    assert result.exit_code == 0, result.output
    assert "does not exist: this app's functions only" in result.stderr
    assert "event demo/limited if event.data.n > 1" in result.stdout
    assert "concurrency" in result.stdout and "greet" in result.stdout
    described = json.loads(cli("functions", APP, "-d", demo, "--json").stdout)
    limited = next(f for f in described if f["id"] == "limited")
    assert limited["concurrency"] == [{"limit": 2, "key": None, "scope": "fn"}]
    assert limited["triggers"] == [{"event": "demo/limited", "if": "event.data.n > 1"}]


# -- acting --------------------------------------------------------------------------------
def test_rerun_many_by_status_and_cancel_many(demo: str) -> None:
    async def failures() -> list[str]:
        app = clidemo.app
        ids = []
        for _ in range(12):
            [event_id] = await app.send({"name": "demo/broken"})
            ids += [r.id for r in await app.runs_for_event(event_id)]
        await app.close()
        return ids

    queued = asyncio.run(failures())
    result = cli("cancel", APP, *queued, "-d", demo)
    assert result.exit_code == 0, result.output
    assert all(f"run {run_id}: cancelling" in result.stdout for run_id in queued)
    result = cli("rerun", APP, "--status", "cancelled", "--function", "broken", "-d", demo)
    assert result.exit_code == 0, result.output
    reruns = re.findall(r"run (\w+): rerun as (\w+)", result.stdout)
    assert {old for old, _ in reruns} == set(queued)
    result = cli("rerun", APP, "--status", "completed", "-d", demo, "--json")
    assert json.loads(result.stdout) == []


# -- real processes: send to a worker, and to a running server -----------------------------
def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stepstone", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_banner(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    seen = ""
    for line in process.stdout:
        seen += line
        if line.startswith("  functions "):  # the banner's last line
            return seen
    raise AssertionError("it did not start:\n" + seen)


def test_send_wait_prints_the_outputs_of_the_runs(sqlite_url: str) -> None:
    worker = _start(["worker", APP, "-d", sqlite_url])
    try:
        _wait_for_banner(worker)
        send = [sys.executable, "-m", "stepstone", "send", APP, "demo/greet", "-d", sqlite_url]
        done = subprocess.run(
            [*send, "--data", '{"name": "ada"}', "--wait"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert re.search(r'run \w+ completed: \{"said": "hello ada"\}', done.stdout), done.stdout
        assert "warning" not in done.stderr  # a worker took the run
        failed = subprocess.run(
            [*send[:4], APP, "demo/broken", "-d", sqlite_url, "--wait"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert re.search(
            r"run \w+ failed: NonRetriableError: the upstream answered 503", (failed.stdout)
        )
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


def test_send_url_posts_to_a_running_dev_server(sqlite_url: str) -> None:
    server = _start(["dev", APP, "-d", sqlite_url, "--port", "0"])
    try:
        banner = _wait_for_banner(server)
        found = re.search(r" on (http://\S+)", banner)
        assert found, banner
        result = cli("send", "--url", found.group(1), "demo/greet", "--wait", "--json")
        assert result.exit_code == 0, result.output
        [sent] = json.loads(result.stdout)
        [outcome] = sent["results"]
        assert outcome["status"] == "completed" and outcome["output"] == {"said": "hello world"}
        assert result.stderr.startswith(f"server {found.group(1)}")
        result = cli("send", "--url", found.group(1), APP, "demo/greet")
        assert result.exit_code == 2 and "with --url, give only the NAME" in result.stderr
    finally:
        server.terminate()
        server.communicate(timeout=30)
    result = cli("send", "--url", found.group(1), "demo/greet")
    assert result.exit_code == 1 and f"cannot reach {found.group(1)}" in result.stderr
