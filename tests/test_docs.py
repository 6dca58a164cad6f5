"""Every code block of the README and docs/ works as written (kinds: tests/docblocks.py):
scripts run, modules import (and tests among them pass under pytest), fragments compile,
and each `stepstone ...` line of a shell block is a valid command line."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from stepstone.cli import main

from .docblocks import PAGES, ROOT, Block, all_blocks, blocks

BLOCKS = all_blocks()
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
ENV.pop("STEPSTONE_DATABASE_URL", None)


def _ids(kind: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind == kind]


def test_the_pages_have_blocks_of_each_kind() -> None:
    kinds = {b.kind for b in BLOCKS}
    assert {"script", "module", "fragment", "sh"} <= kinds, kinds
    assert len(PAGES) >= 4


@pytest.mark.parametrize("block", _ids("script"), ids=lambda b: b.where)
def test_scripts_run(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(block.text)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, f"{block.where}:\n{done.stdout}{done.stderr}"
    for line in (block.output or "").splitlines():
        assert line in done.stdout, f"{block.where} should print {line!r}; printed:\n{done.stdout}"


WITH_MODULES = [p for p in PAGES if any(b.kind == "module" for b in blocks(p))]


@pytest.mark.parametrize("page", WITH_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_import_and_their_tests_pass(page: Path, tmp_path: Path) -> None:
    modules = [b for b in blocks(page) if b.kind == "module"]
    for block in modules:
        assert block.filename is not None
        (tmp_path / block.filename).write_text(block.text)
    for block in modules:
        assert block.filename is not None
        name = block.filename.removesuffix(".py")
        if name.startswith("test_"):
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            command.append(block.filename)
        else:
            command = [sys.executable, "-c", f"import {name}"]
        done = subprocess.run(
            command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{block.where}:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("block", _ids("fragment"), ids=lambda b: b.where)
def test_fragments_compile(block: Block) -> None:
    compile(block.text, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


_STEPSTONE = re.compile(r"^\s*(\w+=\S*\s+)*stepstone\s")


def _command_lines(block: Block) -> list[list[str]]:
    """The `stepstone ...` commands of a shell block, as argument lists (comments,
    environment assignments and line continuations handled as a shell would)."""
    text = block.text.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if not _STEPSTONE.match(line):
            continue
        words = shlex.split(line, comments=True)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]  # VAR=value before the command
        if words and words[0] == "stepstone":
            commands.append(words[1:])
    return commands


SHELL = [(b, c) for b in BLOCKS if b.kind == "sh" for c in _command_lines(b)]


@pytest.mark.parametrize(("block", "args"), SHELL, ids=[f"{b.where} {a[0]}" for b, a in SHELL])
def test_shell_commands_are_valid_command_lines(block: Block, args: list[str]) -> None:
    name, rest = args[0], args[1:]
    with click.Context(main, info_name="stepstone", **main.context_settings) as context:
        command = main.get_command(context, name)
        assert command is not None, f"{block.where}: no command {name!r}"
        try:
            command.make_context(name, list(rest), parent=context)
        except click.UsageError as exc:
            raise AssertionError(f"{block.where}: stepstone {shlex.join(args)}: {exc}") from None
