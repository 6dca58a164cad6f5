"""The stepstone command line: dev, start, worker, send, runs, run, events, functions,
cancel, rerun.

Every user mistake (a wrong MODULE:APP, an unknown option value, a database that does not
exist) is one line on stderr and exit code 2. Every command names its database on stderr;
tables and `--json` go to stdout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click
import httpx
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from . import cliformat, logformat
from .app import App
from .errors import StepstoneError
from .loader import load_app
from .output import printable, redact_url
from .records import Run, RunStatus
from .store import store_from_url

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)
DATABASE_HELP = "Database URL (default: $STEPSTONE_DATABASE_URL or the app's own)."
STATUSES = [s.value for s in RunStatus]
NO_WORKER_AFTER = 2.0  # seconds a sent event's runs may stay queued before send warns


class UserError(click.ClickException):
    """A mistake of the command's user: one line, exit code 2."""

    exit_code = 2


class Cli(click.Group):
    """A group whose errors are one line each: `Error: what is wrong` (no usage dump)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        call = {"args": args, "prog_name": prog_name, "complete_var": complete_var, **extra}
        if not standalone_mode:
            return super().main(**call, standalone_mode=False)
        try:
            code = super().main(**call, standalone_mode=False)
        except click.UsageError as exc:
            hint = f" (see: {exc.ctx.command_path} -h)" if exc.ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except StepstoneError as exc:
        raise UserError(printable(str(exc))) from None


def _load(app_path: str, database: str | None) -> App:
    try:
        return load_app(app_path, database)
    except StepstoneError as exc:
        raise UserError(str(exc)) from None


def _sqlite_file(url: str) -> Path | None:
    try:
        store = store_from_url(url)
    except StepstoneError as exc:
        raise UserError(str(exc)) from None
    path = getattr(store, "path", None)
    return Path(path).resolve() if isinstance(path, str) else None


def _database_name(app: App) -> str:
    """The app's database URL, password hidden, with the file it means if it is SQLite."""
    path = _sqlite_file(app.database_url)
    shown = redact_url(app.database_url)
    return shown if path is None or str(path) in shown else f"{shown} ({path})"


def _announce(app: App) -> None:
    err.print(Text.assemble(("database ", "dim"), _database_name(app)), soft_wrap=True)


def _open_existing(app_path: str, database: str | None) -> App:
    """The app, for a command that reads: its database must exist already."""
    app = _load(app_path, database)
    path = _sqlite_file(app.database_url)
    if path is not None and not path.exists():
        where = (
            "given with --database"
            if database
            else "from $STEPSTONE_DATABASE_URL"
            if _from_env(app)
            else f"the app's own URL, relative to {Path.cwd()}"
        )
        raise UserError(
            f"no database at {path} ({where}); run this where the worker runs, "
            "or pass --database / set STEPSTONE_DATABASE_URL"
        )
    _announce(app)
    return app


def _from_env(app: App) -> bool:
    return os.environ.get("STEPSTONE_DATABASE_URL") == app.database_url


def _app_option(fn: Any) -> Any:
    fn = click.argument("app_path", metavar="MODULE:APP")(fn)
    return click.option("--database", "-d", default=None, help=DATABASE_HELP)(fn)


def _json_option(fn: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def _server_app_option(fn: Any) -> Any:
    """MODULE:APP, optional where SDK apps alone may bring the functions."""
    fn = click.argument("app_path", metavar="[MODULE:APP]", required=False)(fn)
    fn = click.option("--database", "-d", default=None, help=DATABASE_HELP)(fn)
    return click.option(
        "--sdk-url",
        "-u",
        "sdk_urls",
        multiple=True,
        help="The serve URL of an SDK app to sync at start (repeat for several apps).",
    )(fn)


def _signing_key_option(fn: Any) -> Any:
    return click.option(
        "--signing-key",
        envvar="STEPSTONE_SIGNING_KEY",
        default=None,
        help="signkey-<env>-<hex>: SDK apps sync with it, and calls to them are signed "
        "with it (prefer the env var).",
    )(fn)


def _use_signing_key(app: App, signing_key: str | None) -> None:
    """Calls to SDK apps are signed with the key (their answers checked with it)."""
    if not signing_key:
        return
    from .sdk.signing import parse_signing_key

    try:
        app.runtime.signing_key = parse_signing_key(signing_key, what="--signing-key")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--signing-key") from None


def _grace_option(fn: Any) -> Any:
    return click.option(
        "--grace",
        default="30s",
        show_default=True,
        help="On SIGTERM or SIGINT, how long running steps may take to finish and be saved "
        "before the runs go back to the queue (a second signal stops at once).",
    )(fn)


def _grace(value: str) -> float:
    from .durations import parse_duration

    try:
        return (
            float(value)
            if value.replace(".", "", 1).isdigit()
            else (parse_duration(value, what="--grace"))
        )
    except (ValueError, StepstoneError) as exc:
        raise click.BadParameter(str(exc), param_hint="--grace") from None


def _retention_option(fn: Any) -> Any:
    return click.option(
        "--retention",
        default=None,
        help="Delete finished runs (and the events no run needs) this long after they "
        "ended, e.g. 7d; 0 keeps everything (default: the app's, 7 days).",
    )(fn)


def _use_retention(app: App, retention: str | None) -> None:
    if retention is None:
        return
    try:
        app.retention = "0s" if retention.strip() == "0" else retention
    except StepstoneError as exc:
        raise click.BadParameter(str(exc), param_hint="--retention") from None


def _app_or_none(app_path: str | None, database: str | None) -> App:
    """The app a command line names, or, for SDK apps alone, an app of no functions."""
    if app_path is None:
        return App("stepstone", database=database)
    return _load(app_path, database)


async def _closing(app: App, coro: Coroutine[Any, Any, T]) -> T:
    try:
        return await coro
    finally:
        await app.close()


def _set_log(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """`--log-level` and `--log-format`, given before the command or after it."""
    if value is None or ctx.resilient_parsing:
        return
    chosen = ctx.find_root().meta.setdefault("stepstone.log", {"level": "info", "fmt": "auto"})
    chosen["level" if param.name == "log_level" else "fmt"] = value.lower()
    logformat.configure(chosen["level"], chosen["fmt"])


def _log_options(*, default: bool) -> Callable[[F], F]:
    def add(fn: F) -> F:
        fn = click.option(
            "--log-format",
            type=click.Choice(logformat.FORMATS, case_sensitive=False),
            default="auto" if default else None,
            expose_value=False,
            callback=_set_log,
            help="auto (the default): rich on a terminal, plain lines otherwise; "
            "json: one object per line.",
        )(fn)
        return click.option(
            "--log-level",
            type=click.Choice(logformat.LEVELS, case_sensitive=False),
            default="info" if default else None,
            expose_value=False,
            callback=_set_log,
            help="debug adds a line per step (default: info).",
        )(fn)

    return add


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("stepstone"), "--version", "-V", prog_name="stepstone")
@_log_options(default=True)
def main() -> None:
    """stepstone: durable step functions.

    MODULE:APP names your App, e.g. examples.shop:app or path/to/file.py:app."""


# -- serving ---------------------------------------------------------------------------------
async def _serve(
    app: App,
    *,
    dev: bool,
    worker_options: dict[str, Any],
    listen: tuple[str, int] | None = None,
    event_keys: list[str] | None = None,
    api_token: str | None = None,
    allowed_hosts: tuple[str, ...] = (),
    signing_key: str | None = None,
    sdk_urls: Sequence[str] = (),
    metrics_port: int | None = None,
) -> None:
    """Run a worker, and with `listen` the HTTP server, until SIGINT or SIGTERM; with
    `metrics_port` (a worker alone) the probes and metrics on that port."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    worker = app.worker(**worker_options)

    def on_signal() -> None:  # the first stops gracefully, a second at once
        if stop.is_set():
            worker.abort()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    server = sock = None
    if listen is not None:
        from .server import bind, make_server

        server = make_server(
            app,
            dev=dev,
            event_keys=event_keys or [],
            api_token=api_token,
            allowed_hosts=allowed_hosts,
            signing_key=signing_key,
        )
        try:
            sock = bind(*listen)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {listen[0]}:{listen[1]}: {exc}") from None
    elif metrics_port is not None:
        from .server import bind
        from .server.probes import make_worker_server

        server = make_worker_server(app)
        try:
            sock = bind("0.0.0.0", metrics_port)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on port {metrics_port}: {exc}") from None
    await worker.start()
    server_task = None
    if server is not None and sock is not None:
        server_task = asyncio.create_task(server.serve(sockets=[sock]))
    if sock is not None and listen is not None:
        host, port = sock.getsockname()[:2]
        url = f"http://{host}:{port}"
        console.print(f"[bold green]stepstone[/] {'dev server' if dev else 'server'} on {url}")
        console.print(f"  dashboard  {url}/")
        console.print(f"  events     POST {url}/e/{{event_key}}")
        console.print(f"  API        {url}/v1  (OpenAPI: {url}/v1/openapi.json)", soft_wrap=True)
        console.print(Text.assemble("  database   ", _database_name(app)), soft_wrap=True)
    else:
        console.print(
            Text.assemble(
                ("stepstone", "bold green"), f" worker {worker.id} on ", _database_name(app)
            ),
            soft_wrap=True,
        )
        if sock is not None:
            console.print(f"  probes     http://0.0.0.0:{sock.getsockname()[1]}/readyz")
    console.print(Text(f"  functions  {', '.join(app.functions) or '(none)'}"), soft_wrap=True)
    for url in sdk_urls:
        await _sync(url, dev=dev)
    await stop.wait()
    if server is not None and server_task is not None:
        server.should_exit = True
        await asyncio.gather(server_task, return_exceptions=True)
    await worker.stop()
    await app.close()


async def _sync(url: str, *, dev: bool) -> None:
    from .server.sdk_sync import SyncError, sync_app

    try:
        await sync_app(url, dev=dev)
    except SyncError as exc:
        console.print(Text.assemble(("sync failed ", "yellow"), str(exc)), soft_wrap=True)
    else:
        console.print(Text(f"  synced     {url}"), soft_wrap=True)


PORT = click.IntRange(0, 65535)


@main.command()
@_server_app_option
@_log_options(default=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8288, show_default=True, type=PORT)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="A name the server answers to besides loopback names and --host (repeat).",
)
def dev(
    app_path: str | None,
    database: str | None,
    sdk_urls: tuple[str, ...],
    host: str,
    port: int,
    allowed_hosts: tuple[str, ...],
) -> None:
    """Worker, HTTP API and dashboard on one machine; any event key, no API token.

    Apps written with the official SDKs sync to it (INNGEST_DEV=1,
    INNGEST_BASE_URL=http://127.0.0.1:8288), or are synced with -u URL.
    """
    app = _app_or_none(app_path, database)
    options = {"poll_interval": 0.1}
    _run(
        _serve(
            app,
            dev=True,
            listen=(host, port),
            worker_options=options,
            sdk_urls=sdk_urls,
            allowed_hosts=(host, *allowed_hosts),
        )
    )


def _lease_option(fn: Any) -> Any:
    return click.option(
        "--lease",
        "lease_seconds",
        default=30.0,
        show_default=True,
        type=click.FloatRange(0.2, min_open=True),
        help="Seconds a claimed run stays this worker's without renewal.",
    )(fn)


@main.command()
@_server_app_option
@_log_options(default=False)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8288, show_default=True, type=PORT)
@click.option(
    "--event-key",
    "event_keys",
    multiple=True,
    envvar="STEPSTONE_EVENT_KEYS",
    help="Key accepted at POST /e/{key} (repeat, or comma-separate in the env var).",
)
@click.option(
    "--api-token",
    envvar="STEPSTONE_API_TOKEN",
    default=None,
    help="Bearer token for the REST API and the dashboard (prefer the env var: "
    "command lines are visible to other users).",
)
@_signing_key_option
@_grace_option
@_retention_option
@click.option("--concurrency", default=100, show_default=True, type=click.IntRange(1))
@_lease_option
def start(
    app_path: str | None,
    database: str | None,
    sdk_urls: tuple[str, ...],
    host: str,
    port: int,
    event_keys: tuple[str, ...],
    api_token: str | None,
    signing_key: str | None,
    grace: str,
    retention: str | None,
    concurrency: int,
    lease_seconds: float,
) -> None:
    """Production: worker, HTTP event API, REST API and dashboard; keys and a token required."""
    keys = [k.strip() for item in event_keys for k in item.split(",") if k.strip()]
    if not keys:
        raise click.UsageError("give at least one --event-key (or set STEPSTONE_EVENT_KEYS)")
    if not api_token or not api_token.strip():
        raise click.UsageError(
            "give --api-token (or set STEPSTONE_API_TOKEN): outside dev mode the REST API "
            "and the dashboard need a token"
        )
    app = _app_or_none(app_path, database)
    _use_signing_key(app, signing_key)
    _use_retention(app, retention)
    _run(
        _serve(
            app,
            dev=False,
            listen=(host, port),
            event_keys=keys,
            api_token=api_token.strip(),
            signing_key=signing_key or None,
            sdk_urls=sdk_urls,
            worker_options={
                "concurrency": concurrency,
                "lease_seconds": lease_seconds,
                "grace": _grace(grace),
            },
        )
    )


@main.command()
@_server_app_option
@_log_options(default=False)
@_signing_key_option
@_grace_option
@_retention_option
@click.option(
    "--concurrency", default=100, show_default=True, type=click.IntRange(1), help="Runs at once."
)
@_lease_option
@click.option(
    "--poll",
    "poll_interval",
    default=None,
    type=click.FloatRange(0, min_open=True),
    help="Seconds between checks for due work when nothing wakes the worker "
    "(default: 0.25 on SQLite; 5 on PostgreSQL, where LISTEN/NOTIFY wakes it).",
)
@click.option(
    "--metrics-port",
    default=None,
    type=int,
    help="Serve /healthz, /readyz and /metrics on this port (0: any free port).",
)
def worker(
    app_path: str | None,
    database: str | None,
    sdk_urls: tuple[str, ...],
    signing_key: str | None,
    grace: str,
    retention: str | None,
    concurrency: int,
    lease_seconds: float,
    poll_interval: float | None,
    metrics_port: int | None,
) -> None:
    """Run a worker: claim and execute runs until stopped (those of SDK apps too)."""
    app = _app_or_none(app_path, database)
    _use_signing_key(app, signing_key)
    _use_retention(app, retention)
    options = {
        "concurrency": concurrency,
        "lease_seconds": lease_seconds,
        "poll_interval": poll_interval,
        "grace": _grace(grace),
    }
    _run(
        _serve(app, dev=False, worker_options=options, sdk_urls=sdk_urls, metrics_port=metrics_port)
    )


@main.command()
@click.argument("app_path", metavar="[MODULE:APP]", required=False)
@click.option("--database", "-d", default=None, help=DATABASE_HELP)
@click.option(
    "--older-than",
    default=None,
    help="Delete the runs that ended longer ago than this (24h or more; default: the "
    "app's retention, 7 days), with their steps, history and the events no run needs.",
)
def prune(app_path: str | None, database: str | None, older_than: str | None) -> None:
    """Delete finished runs past retention now, in small batches (workers also do it)."""
    app = _app_or_none(app_path, database)

    async def go() -> None:
        try:
            done = await app.prune(older_than)
        finally:
            await app.close()
        console.print(f"pruned {done.runs} runs and {done.events} events")

    _run(go())


# -- sending ---------------------------------------------------------------------------------
@main.command()
@click.argument("target", nargs=-1, required=True, metavar="[MODULE:APP] NAME")
@click.option("--database", "-d", default=None, help=DATABASE_HELP)
@click.option("--data", default="{}", help="The event's data, a JSON object.")
@click.option("--id", "event_id", default=None, help="Idempotency key of the event.")
@click.option(
    "--url",
    default=None,
    help="Send to a running server (stepstone dev / start) instead, e.g. http://127.0.0.1:8288; "
    "then MODULE:APP is not needed.",
)
@click.option(
    "--event-key",
    envvar="STEPSTONE_EVENT_KEY",
    default="dev",
    show_default=True,
    help="With --url: the key of POST /e/{key} (any key works with stepstone dev).",
)
@click.option(
    "--api-token",
    envvar="STEPSTONE_API_TOKEN",
    default=None,
    help="With --url --wait: the REST API's token (stepstone start).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Wait for the runs the event starts and print their outputs; exit 1 unless all completed.",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds --wait waits.",
)
@_json_option
def send(
    target: tuple[str, ...],
    database: str | None,
    data: str,
    event_id: str | None,
    url: str | None,
    event_key: str,
    api_token: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Send an event NAME and print its id and the runs it started."""
    if url is None and len(target) != 2:
        raise click.UsageError("write: stepstone send MODULE:APP NAME (or --url URL NAME)")
    if url is not None and len(target) != 1:
        raise click.UsageError("with --url, give only the NAME: stepstone send --url URL NAME")
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"id\": 1}'", param_hint="--data")
    event = {"name": target[-1], "data": payload, "id": event_id}
    if url is not None:
        result = _send_http(url, event, event_key, api_token, wait, timeout)
    else:
        app = _load(target[0], database)
        path = _sqlite_file(app.database_url)
        _announce(app)
        if path is not None and not path.exists():
            err.print(
                Text(
                    f"warning: {path} does not exist: sending creates a new, empty database "
                    "there; workers elsewhere see this event only if they use this file",
                    style="yellow",
                ),
                soft_wrap=True,
            )
        result = _run(_closing(app, _send_local(app, event, wait, timeout)))
    _print_sent(result, as_json)
    ended = [r["status"] for item in result for r in item.get("results", [])]
    if any(status != RunStatus.COMPLETED.value for status in ended):
        sys.exit(1)  # --wait: a run did not complete (its error is printed above)


async def _send_local(
    app: App, event: dict[str, Any], wait: bool, timeout: float
) -> list[dict[str, Any]]:
    ids = await app.send(event)
    sent: list[dict[str, Any]] = []
    runs: list[Run] = []
    for event_id in ids:
        found = await app.runs_for_event(event_id)
        runs += found
        sent.append({"event_id": event_id, "runs": [r.id for r in found]})
    if wait:
        with err.status(f"waiting for {len(runs)} run(s) to end"):
            for item in sent:
                item["results"] = [
                    _result(await _wait_or_timeout(app, run_id, timeout)) for run_id in item["runs"]
                ]
    elif runs:
        await _warn_if_unclaimed(app, [r.id for r in runs])
    return sent


async def _wait_or_timeout(app: App, run_id: str, timeout: float) -> Run:
    try:
        return await app.wait_for_run(run_id, timeout=timeout)
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from None


async def _warn_if_unclaimed(app: App, run_ids: list[str]) -> None:
    """Say so when no worker takes the new runs at once: the usual reason is that none
    runs on this database (another directory's default file, a typo in the URL)."""
    deadline = time.monotonic() + NO_WORKER_AFTER
    while time.monotonic() < deadline:
        runs = [await app.get_run(run_id, history=False) for run_id in run_ids]
        if any(r is None or r.status is not RunStatus.QUEUED for r in runs):
            return
        await asyncio.sleep(0.05)
    err.print(
        Text(
            f"warning: no worker has taken run {run_ids[0]} within {NO_WORKER_AFTER:g} s; "
            f"is a worker running on {_database_name(app)}? Start one with "
            "`stepstone worker MODULE:APP` on the same database (a function's flow control "
            "may also delay its runs)",
            style="yellow",
        ),
        soft_wrap=True,
    )


def _result(run: Run) -> dict[str, Any]:
    return {"run_id": run.id, "status": run.status.value, "output": run.output, "error": run.error}


def _send_http(
    url: str,
    event: dict[str, Any],
    event_key: str,
    api_token: str | None,
    wait: bool,
    timeout: float,
) -> list[dict[str, Any]]:
    base = url.rstrip("/")
    headers = {"authorization": f"Bearer {api_token}"} if api_token else {}
    err.print(Text.assemble(("server ", "dim"), base), soft_wrap=True)
    try:
        with httpx.Client(base_url=base, timeout=30, headers=headers) as http:
            answer = http.post(
                f"/e/{quote(event_key, safe='')}", json={k: v for k, v in event.items() if v}
            )
            _check(answer)
            sent = []
            for event_id in answer.json()["ids"]:
                found = http.get(f"/v1/events/{quote(event_id, safe='')}")
                _check(found)
                run_ids = [r["id"] for r in found.json().get("runs", [])]
                item: dict[str, Any] = {"event_id": event_id, "runs": run_ids}
                if wait:
                    with err.status(f"waiting for {len(run_ids)} run(s) to end"):
                        item["results"] = [_poll_http(http, r, timeout) for r in run_ids]
                sent.append(item)
            return sent
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {base}: {exc}") from None


def _poll_http(http: httpx.Client, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get(f"/v1/runs/{quote(run_id, safe='')}")
        _check(answer)
        run = answer.json()
        if RunStatus(run["status"]).is_final:
            keys = ("status", "output", "error")
            return {"run_id": run_id, **{k: run.get(k) for k in keys}}
        if time.monotonic() > deadline:
            raise click.ClickException(f"run {run_id} is still {run['status']} after {timeout}s")
        time.sleep(0.05)


def _check(answer: httpx.Response) -> None:
    if answer.is_success:
        return
    try:
        message = answer.json().get("error") or answer.text
    except ValueError:
        message = answer.text
    raise click.ClickException(f"the server answered {answer.status_code}: {message}")


def _print_sent(sent: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        cliformat.print_json(console, sent)
        return
    for item in sent:
        runs = ", ".join(item["runs"]) or "none (no function is triggered by it)"
        console.print(Text(f"event {item['event_id']}: runs {runs}"), soft_wrap=True)
        for result in item.get("results", []):
            line = Text(f"  run {result['run_id']} ")
            ok = result["status"] == "completed"
            line.append(result["status"], style="green" if ok else "red")
            if result.get("error"):
                error = result["error"]
                line.append(f": {error.get('name')}: {error.get('message')}")
            else:
                line.append(f": {json.dumps(result['output'], ensure_ascii=False)}")
            console.print(line, soft_wrap=True)


# -- reading ---------------------------------------------------------------------------------
@main.command()
@_app_option
@click.option("--function", "function_id", default=None, help="Only this function's runs.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only runs in it.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@_json_option
def runs(
    app_path: str,
    database: str | None,
    function_id: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    app = _open_existing(app_path, database)
    page = _run(_closing(app, app.list_runs(function_id=function_id, status=status, limit=limit)))
    if as_json:
        cliformat.print_json(console, [cliformat.run_json(r, whole=False) for r in page])
    elif not page:
        filters = " matching these filters" if function_id or status else " yet"
        console.print(Text(f"no runs{filters}"))
    else:
        console.print(cliformat.runs_table(list(page), console.width))


@main.command(name="run")
@_app_option
@click.argument("run_id")
@_json_option
def show_run(app_path: str, database: str | None, run_id: str, as_json: bool) -> None:
    """Show one run: its output or error (whole), its steps and its history."""
    app = _open_existing(app_path, database)
    run = _run(_closing(app, app.get_run(run_id)))
    if run is None:
        raise UserError(f"no run has id {run_id}; `stepstone runs {app_path}` lists them")
    if as_json:
        cliformat.print_json(console, cliformat.run_json(run))
    else:
        console.print(cliformat.run_view(run))


@main.command()
@_app_option
@click.argument("event_id", required=False)
@click.option("--name", default=None, help="Only events with this name.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@_json_option
def events(
    app_path: str,
    database: str | None,
    event_id: str | None,
    name: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List events, newest first; with EVENT_ID, show that one and the runs it started."""
    app = _open_existing(app_path, database)
    if event_id is not None:

        async def one() -> tuple[Any, list[Run]]:
            stored = await app.get_event(event_id)
            return stored, [] if stored is None else await app.runs_for_event(event_id)

        stored, started = _run(_closing(app, one()))
        if stored is None:
            raise UserError(f"no event has id {event_id}; `stepstone events {app_path}` lists them")
        if as_json:
            cliformat.print_json(console, cliformat.event_json(stored, started))
        else:
            console.print(cliformat.event_view(stored, started))
        return
    found = _run(_closing(app, app.list_events(name=name, limit=limit)))
    if as_json:
        cliformat.print_json(console, [cliformat.event_json(e) for e in found])
    elif not found:
        console.print(Text("no events matching this name" if name else "no events yet"))
    else:
        console.print(cliformat.events_table(list(found), console.width))


@main.command()
@_app_option
@_json_option
def functions(app_path: str, database: str | None, as_json: bool) -> None:
    """The app's functions, and those other apps published in the database: their
    triggers and options."""
    app = _load(app_path, database)
    path = _sqlite_file(app.database_url)
    if path is not None and not path.exists():
        err.print(
            Text(f"database {_database_name(app)} does not exist: this app's functions only"),
            soft_wrap=True,
        )
    else:
        _announce(app)

        async def published() -> None:
            await app.runtime.registry.refresh(await app.store(), force=True)

        _run(_closing(app, published()))
    found = app.runtime.registry.all()
    if as_json:
        cliformat.print_json(console, [fn.describe() for fn in found])
    elif not found:
        console.print(Text("no functions"))
    else:
        console.print(cliformat.functions_table(found))


# -- acting ----------------------------------------------------------------------------------
@main.command()
@_app_option
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID...")
def cancel(app_path: str, database: str | None, run_ids: tuple[str, ...]) -> None:
    """Cancel runs: steps running now finish and are saved; no new step starts."""
    app = _open_existing(app_path, database)
    changed = _run(_closing(app, _each(run_ids, app.cancel, "cancelling")))
    for run_id, ok in zip(run_ids, changed, strict=True):
        console.print(Text(f"run {run_id}: {'cancelling' if ok else 'had already ended'}"))


@main.command()
@_app_option
@click.argument("run_ids", nargs=-1, metavar="[RUN_ID]...")
@click.option("--from-step", default=None, help="Keep the saved steps before this one.")
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    default=None,
    help="Rerun the newest runs in this status (with --function, --limit) instead of RUN_IDs.",
)
@click.option("--function", "function_id", default=None, help="With --status: only this one's.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@_json_option
def rerun(
    app_path: str,
    database: str | None,
    run_ids: tuple[str, ...],
    from_step: str | None,
    status: str | None,
    function_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Start new runs with the same event(s): of RUN_IDs, or of the runs --status selects."""
    if bool(run_ids) == bool(status):
        raise click.UsageError("give RUN_IDs or --status (e.g. --status failed), not both")
    app = _open_existing(app_path, database)

    async def go() -> list[tuple[str, str]]:
        ids = list(run_ids)
        if status is not None:
            page = await app.list_runs(function_id=function_id, status=status, limit=limit)
            ids = [r.id for r in page]

        async def one(run_id: str) -> str:
            return await app.rerun(run_id, from_step=from_step)

        return list(zip(ids, await _each(ids, one, "rerunning"), strict=True))

    done = _run(_closing(app, go()))
    if as_json:
        cliformat.print_json(console, [{"of": old, "run_id": new} for old, new in done])
    elif not done:
        console.print(Text("no runs match: nothing to rerun"))
    for old, new in [] if as_json else done:
        console.print(Text(f"run {old}: rerun as {new}"))


async def _each(items: Sequence[str], act: Any, what: str) -> list[Any]:
    """`act` on each item in turn, with a progress bar (on stderr) when there are many."""
    results: list[Any] = []
    if len(items) < 10:
        for item in items:
            results.append(await act(item))
        return results
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(what, total=len(items))
        for item in items:
            results.append(await act(item))
            progress.advance(task)
    return results


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
