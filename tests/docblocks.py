"""The code blocks of the README and docs/, and what kind each is.

A Python block is one of:
- a script (the default): it runs as `python block.py` and exits 0; when the next block
  is a ```text block, each of its lines is in what the script prints;
- a module, when its first line is `# file: NAME.py ...`: written under that name beside
  the others of its page (so a later block may import it); a `test_*.py` one runs with
  pytest, any other is imported;
- a fragment, when its first line starts with `# fragment`: a piece of a function's body
  or of a definition, which is compiled (top-level await allowed) but not run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_FILE = re.compile(r"^# file: (\S+\.py)\b")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence
    lang: str
    text: str
    output: str | None = None  # the ```text block that follows a script

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def filename(self) -> str | None:
        found = _FILE.match(self.text)
        return found.group(1) if found else None

    @property
    def kind(self) -> str:
        if self.lang != "python":
            return self.lang
        if self.text.startswith("# fragment"):
            return "fragment"
        return "module" if self.filename else "script"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found: list[Block] = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        lang, body = match.group(1), match.group(2)
        if lang == "text" and found and found[-1].kind == "script":
            last = found.pop()
            found.append(Block(last.page, last.line, last.lang, last.text, body))
            continue
        found.append(Block(page, line, lang, body))
    return found


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in blocks(page)]


def module_block(page: Path, filename: str) -> Block:
    for block in blocks(page):
        if block.filename == filename:
            return block
    raise LookupError(f"{page.relative_to(ROOT)} has no block '# file: {filename}'")
