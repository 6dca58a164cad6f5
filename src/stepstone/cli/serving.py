"""The commands that serve: dev and start (a worker with the HTTP API and the dashboard)
and worker (a worker alone, with its probes and metrics if asked). Each runs until SIGINT
or SIGTERM; the first signal stops gracefully, a second at once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from typing import Any

import click
from rich.text import Text

from ..app import App
from .options import (
    app_or_none,
    console,
    database_name,
    grace_option,
    log_options,
    parse_grace,
    retention_option,
    run_async,
    server_app_option,
    signing_key_option,
    use_retention,
    use_signing_key,
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
        from ..server import bind, make_server

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
        from ..server import bind
        from ..server.probes import make_worker_server

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
        console.print(Text.assemble("  database   ", database_name(app)), soft_wrap=True)
    else:
        console.print(
            Text.assemble(
                ("stepstone", "bold green"), f" worker {worker.id} on ", database_name(app)
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
    from ..server.sdk_sync import SyncError, sync_app

    try:
        await sync_app(url, dev=dev)
    except SyncError as exc:
        console.print(Text.assemble(("sync failed ", "yellow"), str(exc)), soft_wrap=True)
    else:
        console.print(Text(f"  synced     {url}"), soft_wrap=True)


PORT = click.IntRange(0, 65535)


@click.command()
@server_app_option
@log_options(default=False)
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
    app = app_or_none(app_path, database)
    options = {"poll_interval": 0.1}
    run_async(
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


@click.command()
@server_app_option
@log_options(default=False)
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
@signing_key_option
@grace_option
@retention_option
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
    app = app_or_none(app_path, database)
    use_signing_key(app, signing_key)
    use_retention(app, retention)
    run_async(
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
                "grace": parse_grace(grace),
            },
        )
    )


@click.command()
@server_app_option
@log_options(default=False)
@signing_key_option
@grace_option
@retention_option
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
    app = app_or_none(app_path, database)
    use_signing_key(app, signing_key)
    use_retention(app, retention)
    options = {
        "concurrency": concurrency,
        "lease_seconds": lease_seconds,
        "poll_interval": poll_interval,
        "grace": parse_grace(grace),
    }
    run_async(
        _serve(app, dev=False, worker_options=options, sdk_urls=sdk_urls, metrics_port=metrics_port)
    )
