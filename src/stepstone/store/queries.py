"""Named SQL queries loaded from the .sql files beside this module.

Their parameters are named (`:name`), which SQLite takes as they are; for PostgreSQL they
become psycopg's `%(name)s`. A script passes them as keyword arguments (`tx.Tx`)."""

from __future__ import annotations

import os
import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_INCLUDE = re.compile(r"\{\{(\w+)\}\}")

# The SQL a placeholder can hide in, in the order they are tried at each position: a
# comment, a string literal, a quoted identifier, a `::type` cast, then a parameter and
# a `%` (which psycopg would read as the start of a placeholder).
_TOKENS = re.compile(
    r"""(?P<skip>--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|::)"""
    r"|:(?P<param>[A-Za-z_]\w*)"
    r"|(?P<percent>%)",
    re.DOTALL,
)

# Set to "1" (the tests do) to check that every statement is given exactly the
# parameters its query takes, no more (a missing one fails on both databases anyway).
CHECK_PARAMS_ENV = "STEPSTONE_CHECK_PARAMS"


def parse(text: str) -> dict[str, str]:
    """Split a file of `-- name: x` blocks into {name: sql}."""
    parts = _NAME.split(text)
    return {
        name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def parameters(sql: str) -> frozenset[str]:
    """The names of a query's `:name` parameters (not in comments, strings or casts)."""
    return frozenset(m["param"] for m in _TOKENS.finditer(sql) if m["param"] is not None)


def to_pyformat(sql: str) -> str:
    """A query's `:name` parameters as psycopg's `%(name)s`, and every `%` it holds (in
    a LIKE pattern, a string, a comment) doubled, as psycopg reads a query's text."""

    def replace(match: re.Match[str]) -> str:
        if match["param"] is not None:
            return f"%({match['param']})s"
        if match["percent"] is not None:
            return "%%"
        return match["skip"].replace("%", "%%")

    return _TOKENS.sub(replace, sql)


def _read(path: str) -> str:
    return resources.files("stepstone.store").joinpath(path).read_text("utf-8")


def named(dialect: str) -> dict[str, str]:
    """The shared queries with the dialect's overrides, and the queries of its own (those
    only its own scripts run), `:name` parameters as written."""
    found = parse(_read("sql/queries.sql"))
    found.update(_dialect_file(dialect, "queries.sql"))
    for name, sql in own(dialect).items():
        # another query's text where it is named, so that the two cannot drift apart
        found[name] = _INCLUDE.sub(lambda match: found[match.group(1)], sql)
    return found


def own(dialect: str) -> dict[str, str]:
    """The queries only the dialect has (`sql/<dialect>/own.sql`): what a script written
    for it alone runs, where the other dialect has no way to say the same."""
    return _dialect_file(dialect, "own.sql")


def _dialect_file(dialect: str, name: str) -> dict[str, str]:
    path = resources.files("stepstone.store").joinpath(f"sql/{dialect}/{name}")
    return parse(path.read_text("utf-8")) if path.is_file() else {}


def load(dialect: str) -> dict[str, str]:
    """The dialect's queries, ready to run: `:name` becomes `%(name)s` for PostgreSQL."""
    found = named(dialect)
    if dialect == "postgres":
        found = {name: to_pyformat(sql) for name, sql in found.items()}
    return found


def params_to_check(dialect: str) -> dict[str, frozenset[str]] | None:
    """Each query's parameters when CHECK_PARAMS_ENV asks for the check, else None."""
    if os.environ.get(CHECK_PARAMS_ENV, "") in ("", "0"):
        return None
    return {name: parameters(sql) for name, sql in named(dialect).items()}


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every numbered migration file, in order."""
    folder = resources.files("stepstone.store").joinpath(f"sql/{dialect}")
    found = []
    for item in folder.iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", item.name)
        if match:
            found.append((int(match.group(1)), match.group(2), item.read_text("utf-8")))
    return sorted(found)
