"""The report's tables beyond the main one: workload 7 (SDK apps)."""

from __future__ import annotations

from typing import Any

from .figures import fmt, get

# workload 7 (bench/sdk.py), its own table: (workload, label) and the metrics of each row
SDK_ROWS = [
    ("sdk_native", "native stepstone function"),
    ("sdk_py", "Python SDK app (FastAPI)"),
    ("sdk_js", "npm SDK app (Express)"),
]
SDK_METRICS = [
    "steps_per_s",
    "runs_per_s",
    "first_step.p50_ms",
    "first_step.p99_ms",
    "run.p50_ms",
    "run.p99_ms",
    "cpu_ms_per_step.stepstone",
    "cpu_ms_per_step.app",
]
HTTP_ROWS = [
    ("raw", "1 HTTP round trip, minimal client (the floor)"),
    ("httpx", "1 HTTP round trip, httpx (the worker's client)"),
]


def sdk_table(raw: dict[str, Any], medians: dict[str, Any]) -> Any:
    """Workload 7: the 10-step function native and in SDK apps, and the HTTP floor; None
    when it did not run."""
    from rich.table import Table

    lane = "sdk/sqlite"
    if lane not in medians:
        return None
    sizes = raw["sizes"]
    table = Table(
        title=f"7 SDK apps on stepstone (SQLite): a {sizes['concurrent_steps']}-step function, "
        f"{sizes['sdk_runs']:,} runs sent at once; latency with the worker idle "
        f"({sizes['sdk_latency_samples']} runs one by one); medians of the repetitions"
    )
    for column in ("", "steps/s", "runs/s", "÷ native", "event→1st step p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_column("event→run done p50 ms", justify="right")
    table.add_column("CPU ms/step: stepstone", justify="right")
    table.add_column("app", justify="right")
    native = get(medians, lane, "sdk_native", "steps_per_s")
    for workload, label in SDK_ROWS:
        rate = get(medians, lane, workload, "steps_per_s")
        values = [get(medians, lane, workload, m) for m in SDK_METRICS]
        share = f"{rate / native:.2f}x" if rate and native else "-"
        table.add_row(
            label,
            fmt(values[0], "/s"),
            fmt(values[1], "/s"),
            share,
            fmt(values[2], "ms"),
            fmt(values[3], "ms"),
            fmt(values[4], "ms"),
            fmt(values[6], "ms"),
            fmt(values[7], "ms") if workload != "sdk_native" else "",
        )
    for client, label in HTTP_ROWS:
        p50 = get(medians, lane, "http_rtt", f"{client}.p50_ms")
        p99 = get(medians, lane, "http_rtt", f"{client}.p99_ms")
        table.add_row(label, "", "", "", fmt(p50, "ms"), fmt(p99, "ms"), "", "", "")
    return table


PATHS = [(w, m) for w, _ in SDK_ROWS for m in SDK_METRICS] + [
    ("http_rtt", f"{client}.{q}") for client, _ in HTTP_ROWS for q in ("p50_ms", "p99_ms")
]
