"""The commands that read a database: runs, run, events and functions."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from ..records import Run
from . import render
from .options import (
    STATUSES,
    UserError,
    announce,
    app_option,
    closing,
    console,
    database_name,
    err,
    json_option,
    open_app,
    open_existing,
    run_async,
    sqlite_file,
)


@click.command()
@app_option
@click.option("--function", "function_id", default=None, help="Only this function's runs.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only runs in it.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@json_option
def runs(
    app_path: str,
    database: str | None,
    function_id: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first."""
    app = open_existing(app_path, database)
    page = run_async(
        closing(app, app.list_runs(function_id=function_id, status=status, limit=limit))
    )
    if as_json:
        render.print_json(console, [render.run_json(r, whole=False) for r in page])
    elif not page:
        filters = " matching these filters" if function_id or status else " yet"
        console.print(Text(f"no runs{filters}"))
    else:
        console.print(render.runs_table(list(page), console.width))


@click.command(name="run")
@app_option
@click.argument("run_id")
@json_option
def show_run(app_path: str, database: str | None, run_id: str, as_json: bool) -> None:
    """Show one run: its output or error (whole), its steps and its history."""
    app = open_existing(app_path, database)
    run = run_async(closing(app, app.get_run(run_id)))
    if run is None:
        raise UserError(f"no run has id {run_id}; `stepstone runs {app_path}` lists them")
    if as_json:
        render.print_json(console, render.run_json(run))
    else:
        console.print(render.run_view(run))


@click.command()
@app_option
@click.argument("event_id", required=False)
@click.option("--name", default=None, help="Only events with this name.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@json_option
def events(
    app_path: str,
    database: str | None,
    event_id: str | None,
    name: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List events, newest first; with EVENT_ID, show that one and the runs it started."""
    app = open_existing(app_path, database)
    if event_id is not None:

        async def one() -> tuple[Any, list[Run]]:
            stored = await app.get_event(event_id)
            return stored, [] if stored is None else await app.runs_for_event(event_id)

        stored, started = run_async(closing(app, one()))
        if stored is None:
            raise UserError(f"no event has id {event_id}; `stepstone events {app_path}` lists them")
        if as_json:
            render.print_json(console, render.event_json(stored, started))
        else:
            console.print(render.event_view(stored, started))
        return
    found = run_async(closing(app, app.list_events(name=name, limit=limit)))
    if as_json:
        render.print_json(console, [render.event_json(e) for e in found])
    elif not found:
        console.print(Text("no events matching this name" if name else "no events yet"))
    else:
        console.print(render.events_table(list(found), console.width))


@click.command()
@app_option
@json_option
def functions(app_path: str, database: str | None, as_json: bool) -> None:
    """The app's functions, and those other apps published in the database: their
    triggers and options."""
    app = open_app(app_path, database)
    path = sqlite_file(app.database_url)
    if path is not None and not path.exists():
        err.print(
            Text(f"database {database_name(app)} does not exist: this app's functions only"),
            soft_wrap=True,
        )
    else:
        announce(app)

        async def published() -> None:
            await app.runtime.registry.refresh(await app.store(), force=True)

        run_async(closing(app, published()))
    found = app.runtime.registry.all()
    if as_json:
        render.print_json(console, [fn.describe() for fn in found])
    elif not found:
        console.print(Text("no functions"))
    else:
        console.print(render.functions_table(found))
