"""Medians, ratios and targets from the cells' results; the table, the JSON and the chart."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections import defaultdict
from typing import Any

from . import tables
from .common import median
from .figures import BACKEND, dig, fmt, get
from .tables import sdk_table

LANES = [
    ("stepstone", "sqlite"),
    ("dbos", "sqlite"),
    ("floor", "sqlite"),
    ("stepstone", "postgres"),
    ("dbos", "postgres"),
    ("floor", "postgres"),
]
LABEL = {"stepstone": "stepstone", "dbos": "DBOS", "floor": "floor"}

# (workload, metric path, label, unit, higher is better)
METRICS = [
    ("sequential", "steps_per_s", "1 sequential: steps/s", "/s", True),
    ("sequential", "us_per_step", "1 sequential: µs/step", "µs", False),
    ("sequential", "vs_floor_paired", "1 sequential ÷ floor run beside it", "x", True),
    ("concurrent", "steps_per_s", "2 concurrent: steps/s", "/s", True),
    ("concurrent", "runs_per_s", "2 concurrent: runs/s", "/s", True),
    ("concurrent_procs", "steps_per_s", "2 concurrent, 2 worker processes: steps/s", "/s", True),
    ("concurrent_procs", "runs_per_s", "2 concurrent, 2 worker processes: runs/s", "/s", True),
    ("latency", "first_step.p50_ms", "3 event→1st step p50", "ms", False),
    ("latency", "first_step.p99_ms", "3 event→1st step p99", "ms", False),
    ("latency", "step_to_step.p50_ms", "3 step→next step p50", "ms", False),
    ("latency", "step_to_step.p99_ms", "3 step→next step p99", "ms", False),
    ("latency", "commit.p50_ms", "3 floor: 1 commit after the idle gap p50", "ms", False),
    ("latency", "commit.p99_ms", "3 floor: 1 commit after the idle gap p99", "ms", False),
    ("latency_xproc", "first_step.p50_ms", "3x other process: event→1st p50", "ms", False),
    ("latency_xproc", "first_step.p99_ms", "3x other process: event→1st p99", "ms", False),
    ("timers", "lateness.p50_ms", "4 timers: lateness p50", "ms", False),
    ("timers", "lateness.p99_ms", "4 timers: lateness p99", "ms", False),
    ("timers_paced", "lateness.p50_ms", "4 timers, paced sends: lateness p50", "ms", False),
    ("timers_paced", "lateness.p99_ms", "4 timers, paced sends: lateness p99", "ms", False),
    ("sleepers", "rss_first_mb", "4 worker RSS, 1% of sleepers", "MB", False),
    ("sleepers", "rss_last_mb", "4 worker RSS, all sleepers", "MB", False),
    ("waits", "nonmatching_events_per_s_empty_db", "5 non-matching events/s, empty db", "/s", True),
    ("waits", "nonmatching_events_per_s_no_waits", "5 non-matching/s, N sleeping", "/s", True),
    ("waits", "nonmatching_events_per_s_with_waits", "5 non-matching/s, N waiting", "/s", True),
    ("waits", "matching_events_per_s", "5 matching events/s, N waits", "/s", True),
    ("intake", "single.events_per_s", "6 POST /e: events/s, 1 per request", "/s", True),
    ("intake", "batched_100.events_per_s", "6 POST /e: events/s, 100 per request", "/s", True),
    ("intake", "keepalive.p50_ms", "6 POST /e, 1 client keep-alive: p50", "ms", False),
    ("intake", "keepalive.p99_ms", "6 POST /e, 1 client keep-alive: p99", "ms", False),
]

PATHS = [(w, path) for w, path, *_ in METRICS] + tables.PATHS


def _enrich(workload: str, result: dict[str, Any]) -> dict[str, Any]:
    if workload == "sleepers" and result.get("rss"):
        result = {
            **result,
            "rss_first_mb": result["rss"][0]["rss_mb"],
            "rss_last_mb": result["rss"][-1]["rss_mb"],
        }
    return result


def aggregate(raw: dict[str, Any]) -> dict[str, Any]:
    """{lane: {workload: {metric: {"median", "values"}}}} over the repetitions."""
    values: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for cell in raw["cells"]:
        lane = f"{cell['system']}/{cell['backend']}"
        for workload, result in cell["results"].items():
            if not isinstance(result, dict) or "error" in result:
                continue
            result = _enrich(workload, result)
            for w, path in PATHS:
                if w == workload:
                    v = dig(result, path)
                    if v is not None and not math.isnan(v):
                        values[lane][workload][path].append(v)
    out: dict[str, Any] = {}
    for lane, workloads in values.items():
        out[lane] = {
            w: {m: {"median": median(vs), "values": vs} for m, vs in metrics.items()}
            for w, metrics in workloads.items()
        }
    return out


# event -> first step, p50 and p99 goals in ms, by workload and database (issue 21's for
# p50 in process and for both across processes; the p99 in process kept from issue 7)
LATENCY_GOALS = {
    ("latency", "sqlite"): (1.0, 25.0),
    ("latency", "postgres"): (2.5, 25.0),
    ("latency_xproc", "sqlite"): (2.5, 10.0),
    ("latency_xproc", "postgres"): (4.0, 15.0),
}


def targets(medians: dict[str, Any], raw: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(name: str, goal: str, value: float | None, ok: bool | None, shown: str) -> None:
        rows.append({"target": name, "goal": goal, "value": value, "met": ok, "shown": shown})

    sizes = raw["sizes"]
    for backend in ("sqlite", "postgres"):
        b, lane = BACKEND[backend], f"stepstone/{backend}"
        ss = get(medians, lane, "sequential", "steps_per_s")
        fl = get(medians, f"floor/{backend}", "sequential", "steps_per_s")
        if ss and fl:
            r = ss / fl
            add(f"sequential vs floor ({b})", "≥ 85% of the floor", r, r >= 0.85, f"{r:.0%}")
        paired = get(medians, lane, "sequential", "vs_floor_paired")
        if paired:
            add(
                f"sequential vs the floor run beside it ({b})",
                "≥ 85% of the floor",
                paired,
                paired >= 0.85,
                f"{paired:.0%}",
            )
        dc = get(medians, f"dbos/{backend}", "concurrent", "steps_per_s")
        for workload, how in (("concurrent", "1 worker process"), ("concurrent_procs", "2")):
            sc = get(medians, lane, workload, "steps_per_s")
            if sc and dc:
                r = sc / dc
                where = how if workload == "concurrent" else f"{how} worker processes"
                goal = 40 if workload == "concurrent" else 20  # issue 21: one process, 40x
                add(
                    f"concurrent vs DBOS ({b}, {where})",
                    f"≥ {goal}x DBOS steps/s",
                    r,
                    r >= goal,
                    f"{r:.1f}x",
                )
        for workload, where in (("latency", "in process"), ("latency_xproc", "other process")):
            p50 = get(medians, lane, workload, "first_step.p50_ms")
            p99 = get(medians, lane, workload, "first_step.p99_ms")
            if p50 is not None and p99 is not None:
                p50_goal, p99_goal = LATENCY_GOALS[(workload, backend)]
                # beside it, the floor's one commit after the same idle gap: the least an
                # event's way to its first step can take on this machine
                idle = get(medians, f"floor/{backend}", "latency", "commit.p50_ms")
                beside = f" (floor's 1 commit: {idle:.2f})" if idle is not None else ""
                add(
                    f"event→first step p50 ({where}, {b})",
                    f"< {p50_goal:g} ms",
                    p50,
                    p50 < p50_goal,
                    f"{p50:.2f} ms{beside}",
                )
                add(
                    f"event→first step p99 ({where}, {b})",
                    f"< {p99_goal:g} ms",
                    p99,
                    p99 < p99_goal,
                    f"{p99:.2f} ms",
                )
        n = sizes["timer_runs"]
        rate = sizes.get("timer_rate_postgres" if backend == "postgres" else "timer_rate")
        for workload, how in (("timers", "sent at once"), ("timers_paced", f"sent {rate:g}/s")):
            late = get(medians, lane, workload, "lateness.p99_ms")
            if late is not None:
                goal = 25 if workload == "timers" else 50  # issue 21: the burst, 25 ms
                add(
                    f"timer lateness p99, {n:,} runs {how} ({b})",
                    f"< {goal} ms",
                    late,
                    late < goal,
                    f"{late:,.1f} ms",
                )
        first = get(medians, lane, "sleepers", "rss_first_mb")
        last = get(medians, lane, "sleepers", "rss_last_mb")
        if first and last:
            r = last / first
            add(
                f"worker memory flat with {sizes['sleepers']:,} sleepers ({b})",
                "RSS grows ≤ 10% from 1% to 100% of them",
                r,
                r <= 1.10,
                f"{first:.0f} → {last:.0f} MB (+{r - 1:.0%})",
            )
        # the baseline: as many runs in the database, sleeping instead of waiting
        none = get(medians, lane, "waits", "nonmatching_events_per_s_no_waits")
        full = get(medians, lane, "waits", "nonmatching_events_per_s_with_waits")
        if none and full:
            r = full / none
            add(
                f"non-matching event cost, {sizes['waiters']:,} runs waiting vs sleeping ({b})",
                "within 10%",
                r,
                r >= 0.90,
                f"{full:,.0f} vs {none:,.0f} events/s ({r:.0%})",
            )
        empty = get(medians, lane, "backlog", "empty_runs_per_s")
        deep = get(medians, lane, "backlog", "backlog_runs_per_s")
        if empty and deep:
            r = deep / empty
            add(
                f"drain rate with {sizes['backlog_queued']:,} runs queued vs an empty database "
                f"({b})",
                "within 10%",
                r,
                r >= 0.90,
                f"{deep:,.0f} vs {empty:,.0f} runs/s ({r:.0%})",
            )
        for phase, where in (
            ("worker", "the worker's prune"),
            ("other_process", "`stepstone prune`"),
        ):
            during = get(medians, lane, "prune", f"{phase}.checkpoints.p99_ms")
            alone = get(medians, lane, "prune", "alone.p99_ms")
            if during is not None and alone:
                r = during / alone
                add(
                    f"checkpoint p99 during {where} of {sizes['prune_runs']:,} runs ({b})",
                    "≤ 3x the stream alone",
                    r,
                    r <= 3,
                    f"{during:.2f} vs {alone:.2f} ms ({r:.1f}x)",
                )
    return rows


def render(raw: dict[str, Any], medians: dict[str, Any], goals: list[dict[str, Any]]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    lanes = [(s, b) for s, b in LANES if any(f"{s}/{b}" == lane for lane in medians)]
    backends = [b for b in BACKEND if f"stepstone/{b}" in medians]
    table = Table(
        title=f"stepstone benchmarks: medians of {raw['sizes']['repetitions']} "
        "repetitions (one run of the heavy workloads 4-5)"
    )
    table.add_column("workload", no_wrap=True)
    table.add_column("unit")
    for system, backend in lanes:
        table.add_column(f"{LABEL[system]}\n{BACKEND[backend]}", justify="right")
    for backend in backends:
        for other in ("DBOS", "floor"):
            table.add_column(f"stepstone ÷\n{other} ({BACKEND[backend]})", justify="right")
    for workload, path, label, unit, higher in METRICS:
        cells = []
        present = False
        for system, backend in lanes:
            lane = f"{system}/{backend}"
            v = get(medians, lane, workload, path)
            present = present or v is not None
            cells.append(fmt(v, unit))
        if not present:
            continue
        ratios = []
        for backend in backends:
            for other in ("dbos", "floor"):
                a = get(medians, f"stepstone/{backend}", workload, path)
                b = get(medians, f"{other}/{backend}", workload, path)
                if a and b:
                    r = a / b if higher else b / a
                    ratios.append(f"{r:.2f}x")
                else:
                    ratios.append("")
        table.add_row(label, unit, *cells, *ratios)
    parts = [table] if table.row_count else []  # a run of other workloads only
    sdk = sdk_table(raw, medians)
    if sdk is not None:
        parts.append(sdk)
    parts += tables.new_tables(raw, medians)
    plans = tables.claim_plans(raw)
    if plans:
        parts.append(Text("\n\n".join(plans)))
    goals_table = Table(title="targets")
    for column in ("target", "goal", "measured", "met"):
        goals_table.add_column(column)
    for row in goals:
        met = {True: "[green]met[/]", False: "[red]missed[/]", None: "-"}[row["met"]]
        goals_table.add_row(row["target"], row["goal"], row["shown"], met)
    return Group(*parts, *([goals_table] if goals else []))


def settings_note(raw: dict[str, Any]) -> list[str]:
    notes = [
        "SQLite: every system on one filesystem, journal_mode=WAL, synchronous=FULL "
        "(stepstone's default; the floor sets it; DBOS's file is switched to WAL before launch "
        "and keeps SQLite's default synchronous=FULL).",
        "ratios: stepstone ÷ other for rates, other ÷ stepstone for times: > 1 means stepstone "
        "is ahead.",
    ]
    if raw.get("postgres_version"):
        notes.append(
            f"PostgreSQL {raw['postgres_version']}: a throwaway cluster for this run, defaults "
            "(fsync=on, synchronous_commit=on), on the same disk."
        )
    notes.extend(raw.get("notes", []))
    return notes


def write(
    raw: dict[str, Any], medians: dict[str, Any], goals: list[dict[str, Any]], outdir: str, tag: str
) -> tuple[str, str | None]:
    os.makedirs(outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    doc = {
        "mode": tag,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "durability": settings_note(raw),
        **raw,
        "medians": medians,
        "targets": goals,
    }
    path = os.path.join(outdir, f"{tag}-{stamp}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, default=str)
    with open(os.path.join(outdir, f"{tag}-latest.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, default=str)
    png = None
    with contextlib.suppress(ImportError):  # matplotlib comes with the `bench` extra
        png = chart(raw, medians, os.path.join(outdir, f"{tag}-latest.png"))
    return path, png


def chart(raw: dict[str, Any], medians: dict[str, Any], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"stepstone": "#2a9d8f", "dbos": "#e76f51", "floor": "#8d99ae"}
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    panels = [
        (axes[0][0], "sequential", "steps_per_s", "1. sequential (1 run): steps/s", False),
        (axes[0][1], "concurrent", "steps_per_s", "2. concurrent runs: steps/s", True),
    ]
    for ax, workload, metric, title, log in panels:
        names, vals, cols = [], [], []
        for system, backend in LANES:
            v = get(medians, f"{system}/{backend}", workload, metric)
            if v is None:
                continue
            names.append(f"{LABEL[system]}\n{BACKEND[backend]}")
            vals.append(v)
            cols.append(colors[system])
            procs = get(medians, f"{system}/{backend}", "concurrent_procs", metric)
            if workload == "concurrent" and procs is not None:
                names.append(f"{LABEL[system]}\n{BACKEND[backend]}\n2 processes")
                vals.append(procs)
                cols.append(colors[system])
        bars = ax.bar(names, vals, color=cols)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in vals], fontsize=9)
        ax.set_title(title)
        if log and vals:  # a run of some systems only may leave a panel empty
            ax.set_yscale("log")
    ax = axes[1][0]
    groups = [("latency", "in process"), ("latency_xproc", "other process")]
    labels, p50s, p99s, cols = [], [], [], []
    for workload, where in groups:
        for system, backend in LANES:
            lane = f"{system}/{backend}"
            a = get(medians, lane, workload, "first_step.p50_ms")
            b = get(medians, lane, workload, "first_step.p99_ms")
            if a is None or b is None:
                continue
            labels.append(f"{LABEL[system]} {BACKEND[backend]}\n{where}")
            p50s.append(a)
            p99s.append(b)
            cols.append(colors[system])
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], p50s, width=0.4, color=cols, label="p50")
    ax.bar([x + 0.2 for x in xs], p99s, width=0.4, color=cols, alpha=0.5, label="p99")
    ax.set_xticks(list(xs), labels, fontsize=7, rotation=35, ha="right")
    if p50s:
        ax.set_yscale("log")
    ax.set_ylabel("ms")
    ax.axhline(5, color="black", lw=0.6, ls="--")
    ax.axhline(25, color="black", lw=0.6, ls=":")
    ax.set_title("3. event → first step (p50 solid, p99 light; targets 5 / 25 ms)")
    ax = axes[1][1]
    lines = []
    for backend in BACKEND:
        found = []
        for workload, path_, label, unit, _ in METRICS:
            if workload in ("concurrent_procs", "timers", "timers_paced", "sleepers", "waits"):
                v = get(medians, f"stepstone/{backend}", workload, path_)
                if v is not None:
                    found.append(f" {label[2:]}: {fmt(v, unit)} {unit}")
        if found:
            lines += [f"{BACKEND[backend]}:", *found]
    ax.axis("off")
    ax.set_title("2, 4-5. stepstone: more workloads")
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=9)
    machine = raw.get("machine", {})
    fig.suptitle(
        f"stepstone {machine.get('stepstone', '')} vs DBOS {machine.get('dbos', '')} — "
        f"{machine.get('cpus', '?')} CPUs, Python {machine.get('python', '')}, SQLite "
        f"{machine.get('sqlite', '')} (WAL, synchronous=FULL), PostgreSQL "
        f"{raw.get('postgres_version') or 'n/a'}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
