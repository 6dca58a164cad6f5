"""The report's tables beyond the main one: workload 7 (SDK apps), the workloads of
issue 21 (a plain `def` function, large outputs, backlog independence, database work per
step, worker processes), checkpoint latency during a prune (issue 18), and the claim's
plan."""

from __future__ import annotations

from typing import Any

from .figures import BACKEND, fmt, get

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


PROCESS_COUNTS = range(1, 9)
PROCESS_METRICS = [
    "steps_per_s",
    "runs_per_s",
    "cores_busy.database",
    "cpu_us_per_step.database",
    "cores_busy.workers",
    "cpu_us_per_step.workers",
]
# workload 8: per step, counted; (metric, label, unit); a metric a database lacks is "-"
DBWORK_ROWS = [
    ("statements", "statements", ""),
    ("commits", "commits (transactions)", ""),
    ("rows_written", "rows written (inserted + updated + deleted)", ""),
    ("wal_bytes", "WAL bytes", "B"),
    ("wal_records", "WAL records (PostgreSQL)", ""),
    ("wal_fpi", "WAL full-page images (PostgreSQL)", ""),
    ("server_cpu_us", "server CPU µs, measured (PostgreSQL)", "µs"),
]
NEW = {
    "sequential_def": ["steps_per_s"],
    "concurrent_def": ["steps_per_s"],
    "large_sequential": [
        "steps_per_s",
        "mb_per_s",
        "floor_paired_steps_per_s",
        "floor_mb_per_s",
        "vs_floor_paired",
        "bytes_per_step",
    ],
    "large_concurrent": ["steps_per_s", "mb_per_s", "bytes_per_step"],
    "backlog": ["empty_runs_per_s", "backlog_runs_per_s", "backlog_vs_empty"],
    "dbwork": [f"per_step.{m}" for m, _, _ in DBWORK_ROWS],
    "concurrent_procs": [f"by_processes.{n}.{m}" for n in PROCESS_COUNTS for m in PROCESS_METRICS],
    "prune": [
        f"{phase}.{m}"
        for phase in ("alone", "worker.checkpoints", "other_process.checkpoints")
        for m in ("p50_ms", "p99_ms", "max_ms", "n")
    ]
    + [
        f"{phase}.{m}"
        for phase in ("worker", "other_process")
        for m in ("p99_vs_alone", "prune_s", "runs_deleted", "rows_deleted")
    ],
}
# the prune workload's rows: (the result's phase, label)
PRUNE_PHASES = [
    ("alone", "the stream alone"),
    ("worker", "during the worker's prune (its own process)"),
    ("other_process", "during `stepstone prune` (another process)"),
]
PATHS = (
    [(w, m) for w, _ in SDK_ROWS for m in SDK_METRICS]
    + [("http_rtt", f"{client}.{q}") for client, _ in HTTP_ROWS for q in ("p50_ms", "p99_ms")]
    + [(w, m) for w, metrics in NEW.items() for m in metrics]
)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def def_table(medians: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="1d-2d a plain `def` function with `def` steps (threads) beside async")
    for column in ("workload", "database", "async def: steps/s", "def: steps/s", "def ÷ async"):
        table.add_column(column, justify="left" if column in ("workload", "database") else "right")
    rows = 0
    for backend, name in BACKEND.items():
        lane = f"stepstone/{backend}"
        for workload in ("sequential", "concurrent"):
            a = get(medians, lane, workload, "steps_per_s")
            d = get(medians, lane, f"{workload}_def", "steps_per_s")
            if d is None:
                continue
            rows += 1
            table.add_row(workload, name, fmt(a, "/s"), fmt(d, "/s"), _ratio(d, a))
    return table if rows else None


def large_table(raw: dict[str, Any], medians: dict[str, Any]) -> Any:
    from rich.table import Table

    sizes = raw["sizes"]
    table = Table(
        title=f"large outputs: steps returning {sizes['large_bytes'] // 1024} KiB of JSON; "
        "the floor beside it writes the same text, one INSERT + COMMIT a step"
    )
    for column in ("workload", "database", "steps/s", "MB/s", "floor steps/s", "floor MB/s"):
        table.add_column(column, justify="left" if column in ("workload", "database") else "right")
    table.add_column("÷ floor", justify="right")
    rows = 0
    for backend, name in BACKEND.items():
        lane = f"stepstone/{backend}"
        for workload, label in (
            ("large_sequential", f"sequential: 1 run x {sizes['large_steps']} steps"),
            (
                "large_concurrent",
                f"concurrent: {sizes['large_runs']} runs x {sizes['concurrent_steps']} steps",
            ),
        ):
            v = [get(medians, lane, workload, m) for m in NEW["large_sequential"][:5]]
            if v[0] is None:
                continue
            rows += 1
            paired = f"{v[4]:.2f}x" if v[4] else "-"
            table.add_row(
                label,
                name,
                fmt(v[0], "/s"),
                fmt(v[1], "MB"),
                fmt(v[2], "/s"),
                fmt(v[3], "MB"),
                paired,
            )
    return table if rows else None


def backlog_table(raw: dict[str, Any], medians: dict[str, Any]) -> Any:
    from rich.table import Table

    sizes = raw["sizes"]
    table = Table(
        title=f"backlog: a worker drains {sizes['backlog_runs']:,} runs (1 step each) in an "
        f"empty database, and with {sizes['backlog_queued']:,} queued + "
        f"{sizes['backlog_sleeping']:,} sleeping far ahead; medians of "
        f"{sizes['backlog_rounds']} alternating rounds"
    )
    for column in ("database", "empty: runs/s", "backlog: runs/s", "backlog ÷ empty"):
        table.add_column(column, justify="left" if column == "database" else "right")
    rows = 0
    for backend, name in BACKEND.items():
        lane = f"stepstone/{backend}"
        e, b, r = (get(medians, lane, "backlog", m) for m in NEW["backlog"])
        if r is None:
            continue
        rows += 1
        table.add_row(name, fmt(e, "/s"), fmt(b, "/s"), f"{r:.0%}")
    return table if rows else None


def dbwork_table(raw: dict[str, Any], medians: dict[str, Any]) -> Any:
    from rich.table import Table

    sizes = raw["sizes"]
    table = Table(
        title=f"8 database work per step, counted: {sizes['concurrent_runs']:,} runs x "
        f"{sizes['concurrent_steps']} steps sent at once, one process (start-up excluded)"
    )
    table.add_column("per step")
    backends = [b for b in BACKEND if f"stepstone/{b}" in medians or f"dbos/{b}" in medians]
    for backend in backends:
        for column in ("stepstone", "DBOS", "DBOS ÷ stepstone"):
            table.add_column(f"{column}\n{BACKEND[backend]}", justify="right")
    rows = 0
    for metric, label, _unit in DBWORK_ROWS:
        cells = []
        for backend in backends:
            s = get(medians, f"stepstone/{backend}", "dbwork", f"per_step.{metric}")
            d = get(medians, f"dbos/{backend}", "dbwork", f"per_step.{metric}")
            cells += [_count(s), _count(d), _ratio(d, s)]
        if any(c != "-" for c in cells):
            rows += 1
            table.add_row(label, *cells)
    return table if rows else None


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def processes_table(raw: dict[str, Any], medians: dict[str, Any]) -> Any:
    from rich.table import Table

    lane = "stepstone/postgres"
    counts = [
        n
        for n in PROCESS_COUNTS
        if get(medians, lane, "concurrent_procs", f"by_processes.{n}.steps_per_s")
    ]
    if not counts:
        return None
    cpus = raw.get("machine", {}).get("cpus")
    table = Table(
        title=f"2p worker processes on one PostgreSQL database, the concurrent workload; "
        f"this machine has {cpus} cores (shared with the database and the sender)"
    )
    for column in (
        "worker processes",
        "steps/s",
        "runs/s",
        "DB cores busy",
        "DB CPU µs/step",
        "workers' cores busy",
        "workers' CPU µs/step",
    ):
        table.add_column(column, justify="right")
    for n in counts:
        v = [
            get(medians, lane, "concurrent_procs", f"by_processes.{n}.{m}") for m in PROCESS_METRICS
        ]
        table.add_row(
            str(n),
            fmt(v[0], "/s"),
            fmt(v[1], "/s"),
            _cores(v[2]),
            fmt(v[3], "µs"),
            _cores(v[4]),
            fmt(v[5], "µs"),
        )
    return table


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def claim_plans(raw: dict[str, Any]) -> list[str]:
    """The claim's plans with the backlog present, from the first backlog cell of each
    database: printed once."""
    out = []
    for backend in BACKEND:
        for cell in raw["cells"]:
            result = cell["results"].get("backlog") if cell["backend"] == backend else None
            if not isinstance(result, dict) or "explain" not in result:
                continue
            plan = result["explain"]
            n = f"{result['queued']:,} queued + {result['sleeping']:,} sleeping"
            query = plan.get("query", "claim_due")  # results from before 2026-12-03: claim_due
            if "sqlite_query_plan" in plan:
                out.append(
                    f"SQLite EXPLAIN QUERY PLAN of {query} ({n}):\n" + plan["sqlite_query_plan"]
                )
            if "postgres_custom" in plan:
                out.append(
                    f"PostgreSQL EXPLAIN (ANALYZE, BUFFERS) of {query} ({n}; "
                    "parameters bound):\n" + plan["postgres_custom"]
                )
                last = plan["postgres_generic"].splitlines()[-1]
                out.append(f"  the same prepared (generic plan): {last.strip()}")
            break
    return out


def prune_table(raw: dict[str, Any], medians: dict[str, Any]) -> Any:
    """Checkpoint latency with no prune and while one runs, side by side (bench/prune.py)."""
    from rich.table import Table

    sizes = raw["sizes"]
    table = Table(
        title=f"prune: checkpoint latency (a step's return -> the next step running) of one "
        f"stream of sequential steps, alone and while {sizes['prune_runs']:,} finished runs "
        "(10 rows each) are pruned"
    )
    for column in ("database", "checkpoints", "", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column in ("database", "") else "right")
    for column in ("p99 ÷ alone", "prune s", "runs deleted", "rows deleted"):
        table.add_column(column, justify="right")
    rows = 0
    for backend, name in BACKEND.items():
        lane = f"stepstone/{backend}"
        for phase, label in PRUNE_PHASES:
            where = phase if phase == "alone" else f"{phase}.checkpoints"
            p50, p99, most, n = (get(medians, lane, "prune", f"{where}.{m}") for m in PRUNE_Q)
            if p50 is None:
                continue
            rows += 1
            done = [get(medians, lane, "prune", f"{phase}.{m}") for m in PRUNE_DONE]
            ratio = "" if done[0] is None else f"{done[0]:.2f}x"
            counts = ["" if v is None else f"{v:,.0f}" for v in done[2:]]
            took = "" if done[1] is None else f"{done[1]:.1f}"
            table.add_row(
                name,
                _count(n),
                label,
                fmt(p50, "ms"),
                fmt(p99, "ms"),
                fmt(most, "ms"),
                ratio,
                took,
                *counts,
            )
    return table if rows else None


PRUNE_Q = ("p50_ms", "p99_ms", "max_ms", "n")
PRUNE_DONE = ("p99_vs_alone", "prune_s", "runs_deleted", "rows_deleted")


def new_tables(raw: dict[str, Any], medians: dict[str, Any]) -> list[Any]:
    found = [
        def_table(medians),
        large_table(raw, medians),
        backlog_table(raw, medians),
        dbwork_table(raw, medians),
        processes_table(raw, medians),
        prune_table(raw, medians),
    ]
    return [t for t in found if t is not None]
