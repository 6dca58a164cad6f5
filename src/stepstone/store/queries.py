"""Named SQL queries loaded from the .sql files beside this module."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Split a file of `-- name: x` blocks into {name: sql}."""
    parts = _NAME.split(text)
    return {
        name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def _read(path: str) -> str:
    return resources.files("stepstone.store").joinpath(path).read_text("utf-8")


def load(dialect: str) -> dict[str, str]:
    """The shared queries with the dialect's overrides; `?` becomes `%s` for PostgreSQL."""
    found = parse(_read("sql/queries.sql"))
    override = resources.files("stepstone.store").joinpath(f"sql/{dialect}/queries.sql")
    if override.is_file():
        found.update(parse(override.read_text("utf-8")))
    if dialect == "postgres":
        found = {name: sql.replace("?", "%s") for name, sql in found.items()}
    return found


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every numbered migration file, in order."""
    folder = resources.files("stepstone.store").joinpath(f"sql/{dialect}")
    found = []
    for item in folder.iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", item.name)
        if match:
            found.append((int(match.group(1)), match.group(2), item.read_text("utf-8")))
    return sorted(found)
