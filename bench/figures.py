"""What the report and its tables share: reading a metric out of a result or the medians,
and formatting a number for a table."""

from __future__ import annotations

from typing import Any

BACKEND = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def dig(value: Any, path: str) -> float | None:
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) else None


def get(medians: dict[str, Any], lane: str, workload: str, metric: str) -> float | None:
    found = medians.get(lane, {}).get(workload, {}).get(metric)
    return None if found is None else float(found["median"])


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("/s", "µs"):
        return f"{value:,.0f}" if value >= 10 else f"{value:.2f}"
    if unit == "x":
        return f"{value:.2f}"
    if unit == "MB":
        return f"{value:,.0f}"
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
