"""The commands that change runs: cancel, rerun and prune."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from rich.progress import Progress
from rich.text import Text

from . import render
from .options import (
    DATABASE_HELP,
    STATUSES,
    app_option,
    app_or_none,
    closing,
    console,
    err,
    json_option,
    open_existing,
    run_async,
)


@click.command()
@app_option
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID...")
def cancel(app_path: str, database: str | None, run_ids: tuple[str, ...]) -> None:
    """Cancel runs: steps running now finish and are saved; no new step starts."""
    app = open_existing(app_path, database)
    changed = run_async(closing(app, _each(run_ids, app.cancel, "cancelling")))
    for run_id, ok in zip(run_ids, changed, strict=True):
        console.print(Text(f"run {run_id}: {'cancelling' if ok else 'had already ended'}"))


@click.command()
@app_option
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
@json_option
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
    app = open_existing(app_path, database)

    async def go() -> list[tuple[str, str]]:
        ids = list(run_ids)
        if status is not None:
            page = await app.list_runs(function_id=function_id, status=status, limit=limit)
            ids = [r.id for r in page]

        async def one(run_id: str) -> str:
            return await app.rerun(run_id, from_step=from_step)

        return list(zip(ids, await _each(ids, one, "rerunning"), strict=True))

    done = run_async(closing(app, go()))
    if as_json:
        render.print_json(console, [{"of": old, "run_id": new} for old, new in done])
    elif not done:
        console.print(Text("no runs match: nothing to rerun"))
    for old, new in [] if as_json else done:
        console.print(Text(f"run {old}: rerun as {new}"))


@click.command()
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
    app = app_or_none(app_path, database)

    async def go() -> None:
        try:
            done = await app.prune(older_than)
        finally:
            await app.close()
        console.print(f"pruned {done.runs} runs and {done.events} events")

    run_async(go())


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
