"""Figures of the reliability tests: printed, and appended to $STEPSTONE_CHAOS_SUMMARY
when it is set (`make chaos` prints that file at its end)."""

from __future__ import annotations

import os


def note(line: str, details: list[str] | None = None) -> None:
    print(line)
    summary = os.environ.get("STEPSTONE_CHAOS_SUMMARY")
    if summary:
        with open(summary, "a") as out:
            out.write(line + "\n")
            out.writelines(f"  {detail}\n" for detail in details or [])
