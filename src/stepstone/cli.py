"""The stepstone command line: dev, start, worker, send, runs, run, cancel, rerun."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from .app import App
from .errors import StepstoneError
from .loader import load_app
from .output import literal, printable, redact_url
from .records import Run

T = TypeVar("T")
console = Console()
DATABASE_HELP = "Database URL (default: $STEPSTONE_DATABASE_URL or the app's own)."


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except StepstoneError as exc:
        raise click.ClickException(printable(str(exc))) from None


def _time(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _app_option(fn: Any) -> Any:
    fn = click.argument("app_path", metavar="MODULE:APP")(fn)
    return click.option("--database", "-d", default=None, help=DATABASE_HELP)(fn)


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


def _app_or_none(app_path: str | None, database: str | None) -> App:
    """The app a command line names, or, for SDK apps alone, an app of no functions."""
    if app_path is None:
        return App("stepstone", database=database)
    return load_app(app_path, database)


@click.group()
@click.version_option(package_name="stepstone", prog_name="stepstone")
@click.option("--log-level", default="info", show_default=True)
def main(log_level: str) -> None:
    """stepstone: durable step functions."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


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
) -> None:
    """Run a worker, and with `listen` the HTTP server, until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
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
    worker = app.worker(**worker_options)
    await worker.start()
    server_task = None
    if server is not None and sock is not None and listen is not None:
        server_task = asyncio.create_task(server.serve(sockets=[sock]))
        host, port = sock.getsockname()[:2]
        url = f"http://{host}:{port}"
        console.print(f"[bold green]stepstone[/] {'dev server' if dev else 'server'} on {url}")
        console.print(f"  dashboard  {url}/")
        console.print(f"  events     POST {url}/e/{{event_key}}")
        console.print(f"  API        {url}/v1  (OpenAPI: {url}/v1/openapi.json)", soft_wrap=True)
        console.print(f"  database   {literal(redact_url(app.database_url))}")
    else:
        console.print(
            f"[bold green]stepstone[/] worker {worker.id} on "
            f"{literal(redact_url(app.database_url))}"
        )
    console.print(f"  functions  {literal(', '.join(app.functions) or '(none)')}")
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
        console.print(f"[yellow]sync failed[/] {literal(str(exc))}")
    else:
        console.print(f"  synced     {literal(url)}")


@main.command()
@_server_app_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8288, show_default=True)
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


@main.command()
@_server_app_option
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8288, show_default=True)
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
@click.option("--concurrency", default=100, show_default=True)
@click.option(
    "--lease",
    "lease_seconds",
    default=30.0,
    show_default=True,
    help="Seconds a claimed run stays this worker's without renewal.",
)
def start(
    app_path: str | None,
    database: str | None,
    sdk_urls: tuple[str, ...],
    host: str,
    port: int,
    event_keys: tuple[str, ...],
    api_token: str | None,
    signing_key: str | None,
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
    _run(
        _serve(
            app,
            dev=False,
            listen=(host, port),
            event_keys=keys,
            api_token=api_token.strip(),
            signing_key=signing_key or None,
            sdk_urls=sdk_urls,
            worker_options={"concurrency": concurrency, "lease_seconds": lease_seconds},
        )
    )


@main.command()
@_server_app_option
@_signing_key_option
@click.option("--concurrency", default=100, show_default=True, help="Runs at once.")
@click.option(
    "--lease",
    "lease_seconds",
    default=30.0,
    show_default=True,
    help="Seconds a claimed run stays ours without renewal.",
)
@click.option(
    "--poll",
    "poll_interval",
    default=None,
    type=float,
    help="Seconds between checks for due work when nothing wakes the worker "
    "(default: 0.25 on SQLite; 5 on PostgreSQL, where LISTEN/NOTIFY wakes it).",
)
def worker(
    app_path: str | None,
    database: str | None,
    sdk_urls: tuple[str, ...],
    signing_key: str | None,
    concurrency: int,
    lease_seconds: float,
    poll_interval: float | None,
) -> None:
    """Run a worker: claim and execute runs until stopped (those of SDK apps too)."""
    app = _app_or_none(app_path, database)
    _use_signing_key(app, signing_key)
    options = {
        "concurrency": concurrency,
        "lease_seconds": lease_seconds,
        "poll_interval": poll_interval,
    }
    _run(_serve(app, dev=False, worker_options=options, sdk_urls=sdk_urls))


@main.command()
@_app_option
@click.argument("name")
@click.option("--data", default="{}", help="The event's data, a JSON object.")
@click.option("--id", "event_id", default=None, help="Idempotency key of the event.")
def send(app_path: str, database: str | None, name: str, data: str, event_id: str | None) -> None:
    """Send an event NAME and print its id and the runs it started."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    app = load_app(app_path, database)

    async def go() -> None:
        try:
            ids = await app.send({"name": name, "data": payload, "id": event_id})
            for event_id_ in ids:
                runs = await app.runs_for_event(event_id_)
                ran = ", ".join(r.id for r in runs) or "none"
                console.print(f"event {literal(event_id_)}: runs {literal(ran)}")
        finally:
            await app.close()

    _run(go())


@main.command()
@_app_option
@click.option("--function", "function_id", default=None)
@click.option("--status", default=None)
@click.option("--limit", default=20, show_default=True)
def runs(
    app_path: str, database: str | None, function_id: str | None, status: str | None, limit: int
) -> None:
    """List runs, newest first."""
    app = load_app(app_path, database)

    async def go() -> None:
        try:
            page = await app.list_runs(function_id=function_id, status=status, limit=limit)
        finally:
            await app.close()
        table = Table("run", "function", "status", "created", "ended")
        for run in page:
            table.add_row(
                run.id,
                literal(run.function_id),  # ids and user data are text, not rich markup
                run.status.value,
                _time(run.created_at),
                _time(run.ended_at),
            )
        console.print(table)

    _run(go())


@main.command(name="run")
@_app_option
@click.argument("run_id")
def show_run(app_path: str, database: str | None, run_id: str) -> None:
    """Show one run: its steps and its history."""
    app = load_app(app_path, database)

    async def go() -> Run | None:
        try:
            return await app.get_run(run_id)
        finally:
            await app.close()

    run = _run(go())
    if run is None:
        raise click.ClickException(f"no run has id {run_id}")
    print_run(run)


def print_run(run: Run) -> None:
    # ids, outputs and errors are the user's text: escaped, so rich prints them as written
    console.print(
        f"[bold]run {literal(run.id)}[/]  function {literal(run.function_id)}  "
        f"status [bold]{run.status}[/]"
    )
    console.print(f"  events {literal(', '.join(run.event_ids))}  created {_time(run.created_at)}")
    if run.output is not None:
        console.print(f"  output {literal(json.dumps(run.output))}")
    if run.error:
        error = f"{run.error.get('name')}: {run.error.get('message')}"
        console.print(f"  error {literal(error)}")
    steps = Table("step", "kind", "status", "attempts", "ms", "output / error")
    for step in run.steps:
        ms = (
            ""
            if step.ended_at is None or step.started_at is None
            else (f"{(step.ended_at - step.started_at) * 1000:.1f}")
        )
        detail = json.dumps(step.output) if step.error is None else step.error.get("message", "")
        steps.add_row(
            literal(step.label),
            step.kind,
            step.status.value,
            str(step.attempts),
            ms,
            literal(detail[:80]),
        )
    console.print(steps)
    history = Table("at", "what", "detail")
    for entry in run.history:
        history.add_row(_time(entry.at), entry.kind, literal(json.dumps(entry.data)[:100]))
    console.print(history)


@main.command()
@_app_option
@click.argument("run_id")
def cancel(app_path: str, database: str | None, run_id: str) -> None:
    """Cancel a run."""
    app = load_app(app_path, database)

    async def go() -> bool:
        try:
            return await app.cancel(run_id)
        finally:
            await app.close()

    changed = _run(go())
    console.print(f"run {run_id}: {'cancelling' if changed else 'had already ended'}")


@main.command()
@_app_option
@click.argument("run_id")
@click.option("--from-step", default=None, help="Keep the steps before this one.")
def rerun(app_path: str, database: str | None, run_id: str, from_step: str | None) -> None:
    """Start a new run with the same event(s)."""
    app = load_app(app_path, database)

    async def go() -> str:
        try:
            return await app.rerun(run_id, from_step=from_step)
        finally:
            await app.close()

    console.print(f"new run {_run(go())}")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
