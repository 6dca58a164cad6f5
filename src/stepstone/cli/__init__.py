"""The stepstone command line: dev, start, worker, send, runs, run, events, functions,
cancel, rerun, prune.

Every user mistake (a wrong MODULE:APP, an unknown option value, a database that does not
exist) is one line on stderr and exit code 2. Every command names its database on stderr;
tables and `--json` go to stdout.

The commands live by what they do (serving, sending, reading, acting); this module holds
the group they join, `stepstone.cli:main`, the console script's entry point."""

from __future__ import annotations

from importlib.metadata import version

import click

from .acting import cancel, prune, rerun
from .options import Cli, log_options
from .reading import events, functions, runs, show_run
from .sending import send
from .serving import dev, start, worker


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("stepstone"), "--version", "-V", prog_name="stepstone")
@log_options(default=True)
def main() -> None:
    """stepstone: durable step functions.

    MODULE:APP names your App, e.g. examples.shop:app or path/to/file.py:app."""


# `stepstone -h` lists them by name, whatever the order here
for _command in (dev, start, worker, send, runs, show_run, events, functions, cancel, rerun, prune):
    main.add_command(_command)

__all__ = ["main"]
