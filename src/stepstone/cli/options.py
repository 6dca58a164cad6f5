"""What the commands share: the console, app loading, the options several commands take,
and the one-line errors (a user's mistake exits with code 2)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from .. import logformat
from ..app import App
from ..errors import StepstoneError
from ..loader import load_app
from ..output import printable, redact_url
from ..records import RunStatus
from ..store import store_from_url

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)
DATABASE_HELP = "Database URL (default: $STEPSTONE_DATABASE_URL or the app's own)."
STATUSES = [s.value for s in RunStatus]


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


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except StepstoneError as exc:
        raise UserError(printable(str(exc))) from None


def open_app(app_path: str, database: str | None) -> App:
    try:
        return load_app(app_path, database)
    except StepstoneError as exc:
        raise UserError(str(exc)) from None


def sqlite_file(url: str) -> Path | None:
    try:
        store = store_from_url(url)
    except StepstoneError as exc:
        raise UserError(str(exc)) from None
    path = getattr(store, "path", None)
    return Path(path).resolve() if isinstance(path, str) else None


def database_name(app: App) -> str:
    """The app's database URL, password hidden, with the file it means if it is SQLite."""
    path = sqlite_file(app.database_url)
    shown = redact_url(app.database_url)
    return shown if path is None or str(path) in shown else f"{shown} ({path})"


def announce(app: App) -> None:
    err.print(Text.assemble(("database ", "dim"), database_name(app)), soft_wrap=True)


def open_existing(app_path: str, database: str | None) -> App:
    """The app, for a command that reads: its database must exist already."""
    app = open_app(app_path, database)
    path = sqlite_file(app.database_url)
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
    announce(app)
    return app


def _from_env(app: App) -> bool:
    return os.environ.get("STEPSTONE_DATABASE_URL") == app.database_url


def app_option(fn: Any) -> Any:
    fn = click.argument("app_path", metavar="MODULE:APP")(fn)
    return click.option("--database", "-d", default=None, help=DATABASE_HELP)(fn)


def json_option(fn: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def server_app_option(fn: Any) -> Any:
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


def signing_key_option(fn: Any) -> Any:
    return click.option(
        "--signing-key",
        envvar="STEPSTONE_SIGNING_KEY",
        default=None,
        help="signkey-<env>-<hex>: SDK apps sync with it, and calls to them are signed "
        "with it (prefer the env var).",
    )(fn)


def use_signing_key(app: App, signing_key: str | None) -> None:
    """Calls to SDK apps are signed with the key (their answers checked with it)."""
    if not signing_key:
        return
    from ..sdk.signing import parse_signing_key

    try:
        app.runtime.signing_key = parse_signing_key(signing_key, what="--signing-key")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--signing-key") from None


def grace_option(fn: Any) -> Any:
    return click.option(
        "--grace",
        default="30s",
        show_default=True,
        help="On SIGTERM or SIGINT, how long running steps may take to finish and be saved "
        "before the runs go back to the queue (a second signal stops at once).",
    )(fn)


def parse_grace(value: str) -> float:
    from ..durations import parse_duration

    try:
        return (
            float(value)
            if value.replace(".", "", 1).isdigit()
            else (parse_duration(value, what="--grace"))
        )
    except (ValueError, StepstoneError) as exc:
        raise click.BadParameter(str(exc), param_hint="--grace") from None


def retention_option(fn: Any) -> Any:
    return click.option(
        "--retention",
        default=None,
        help="Delete finished runs (and the events no run needs) this long after they "
        "ended, e.g. 7d; 0 keeps everything (default: the app's, 7 days).",
    )(fn)


def use_retention(app: App, retention: str | None) -> None:
    if retention is None:
        return
    try:
        app.retention = "0s" if retention.strip() == "0" else retention
    except StepstoneError as exc:
        raise click.BadParameter(str(exc), param_hint="--retention") from None


def app_or_none(app_path: str | None, database: str | None) -> App:
    """The app a command line names, or, for SDK apps alone, an app of no functions."""
    if app_path is None:
        return App("stepstone", database=database)
    return open_app(app_path, database)


async def closing(app: App, coro: Coroutine[Any, Any, T]) -> T:
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


def log_options(*, default: bool) -> Callable[[F], F]:
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
