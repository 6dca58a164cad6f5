"""The deliberate breakages of scripts/breakages.py (which `make chaos` shows the
reliability tests catch) still apply to today's code: each edit finds its text once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_breakage_still_applies_to_the_source() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/breakages.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("all ") and "breakages apply" in done.stdout
