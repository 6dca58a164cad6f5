"""What the command line prints: runs, events and functions as tables and text for
people (local dates, durations like "1.2 s", errors whole), or as JSON for programs.

User data (ids, outputs, errors) goes into `rich.text.Text`, never into markup."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..durations import format_duration
from ..function import FunctionDef
from ..output import printable
from ..records import HistoryEntry, Run, RunStatus, StepRecord
from ..store import StoredEvent

STATUS_STYLE = {
    RunStatus.COMPLETED: "green",
    RunStatus.FAILED: "red",
    RunStatus.CANCELLED: "yellow",
    RunStatus.SKIPPED: "dim",
    RunStatus.RUNNING: "cyan",
    RunStatus.QUEUED: "blue",
    RunStatus.SLEEPING: "magenta",
    RunStatus.WAITING: "magenta",
}
WIDE = 110  # columns a terminal needs for a table's error or data column
PREVIEW = 80  # characters of an output shown in a table cell; the JSON has it whole


def local_time(ts: float | None) -> str:
    """A timestamp as the local date and time, to the millisecond."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def short_time(ts: float | None, now: float | None = None) -> str:
    """A local time for a table: `20:27:14` today, `12-01 20:27:14` this year, else dated."""
    if ts is None:
        return ""
    moment, today = datetime.fromtimestamp(ts), datetime.fromtimestamp(now or time.time())
    if moment.date() == today.date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%m-%d %H:%M:%S" if moment.year == today.year else "%Y-%m-%d %H:%M")


def _table(*columns: str, wrap: str, keep: int | None = None, title: str | None = None) -> Table:
    """A table where only the `wrap` column (long text) wraps. The first holds ids (`keep`:
    the longest one's length), which are never wrapped or cut: they are what users copy."""
    table = Table(*columns, title=title, box=box.SIMPLE_HEAD)
    for column in table.columns:
        if column.header == wrap:
            column.overflow, column.ratio = "fold", 1
        else:
            column.no_wrap = True
    if keep is not None:
        table.columns[0].min_width, table.columns[0].overflow = keep, "ignore"
    return table


def took(start: float | None, end: float | None) -> str:
    return "" if start is None or end is None else format_duration(max(0.0, end - start))


def preview(value: Any, limit: int = PREVIEW) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_text(status: RunStatus) -> Text:
    return Text(status.value, style=STATUS_STYLE.get(status, ""))


def print_json(console: Console, value: Any) -> None:
    """`value` as indented JSON on the console's file, with no styling or wrapping."""
    console.file.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    console.file.flush()


# -- runs ----------------------------------------------------------------------------------
def runs_table(runs: Sequence[Run], width: int = 120) -> Table:
    """One row per run; the run id is never cut (it is what users copy). On a terminal
    narrower than `WIDE` there is no error column: `stepstone run` shows it."""
    keep = max(len(run.id) for run in runs) if runs else None
    wide = width >= WIDE
    columns = ["run", "function", "status", "created", "took"] + (["error"] if wide else [])
    table = _table(*columns, wrap="error" if wide else "function", keep=keep)
    for run in runs:
        cells: list[RenderableType] = [
            Text(run.id),
            Text(run.function_id),
            status_text(run.status),
            short_time(run.created_at),
            took(run.started_at, run.ended_at),
        ]
        if wide:
            cells.append(Text("" if not run.error else _error_line(run.error), style="red"))
        table.add_row(*cells)
    return table


def run_view(run: Run) -> RenderableType:
    """One run whole: its summary, output, last error (with its stack), steps, history."""
    head = Text.assemble(("run ", "bold"), (run.id, "bold"), "  ", status_text(run.status))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    facts.add_row("function", Text(run.function_id))
    facts.add_row("events", Text(", ".join(run.event_ids) or "-"))
    facts.add_row("created", local_time(run.created_at))
    if run.started_at is not None:
        facts.add_row("started", local_time(run.started_at))
    if run.ended_at is not None:
        spent = took(run.started_at or run.created_at, run.ended_at)
        facts.add_row("ended", f"{local_time(run.ended_at)}  (took {spent})")
    if run.attempt:
        facts.add_row("attempt", str(run.attempt + 1))
    parts: list[RenderableType] = [head, facts]
    if run.output is not None:
        parts += [Text("output", style="bold"), Text(json.dumps(run.output, indent=2))]
    error = run.error or run.last_error()
    if error:
        label = "error" if run.error else "last error (still retrying)"
        parts += [Text(label, style="bold red"), error_view(error)]
    if run.steps:
        parts.append(steps_table(run.steps))
    if run.history:
        parts.append(history_table(run.history))
    return Group(*parts)


def error_view(error: dict[str, Any]) -> Text:
    """An error record whole: name, message and the stack, never cut."""
    text = Text(_error_line(error), style="red")
    stack = str(error.get("stack") or "").rstrip()
    if stack:  # each line as written, control characters shown as escapes
        text.append("\n" + "\n".join(printable(line) for line in stack.splitlines()), style="dim")
    return text


def steps_table(steps: Iterable[StepRecord]) -> Table:
    columns = ("step", "kind", "status", "attempts", "took", "output / error")
    table = _table(*columns, wrap="output / error", title="steps")
    for step in steps:
        detail = _error_line(step.error) if step.error else preview(step.output)
        table.add_row(
            Text(step.label),
            step.kind,
            step.status.value,
            str(step.attempts),
            took(step.started_at, step.ended_at),
            Text(detail, style="red" if step.error else ""),
        )
    return table


def history_table(history: Iterable[HistoryEntry]) -> Table:
    table = _table("at", "what", "detail", wrap="detail", title="history")
    for entry in history:
        table.add_row(local_time(entry.at), entry.kind, Text(_history_detail(entry.data)))
    return table


def _history_detail(data: dict[str, Any]) -> str:
    """`key: value` pairs, times among them as local dates, errors whole."""
    parts = []
    for key, value in data.items():
        if value is None:
            continue
        if key in ("at", "until") and isinstance(value, int | float):
            shown = local_time(float(value))
        elif isinstance(value, dict) and "message" in value:
            shown = _error_line(value)
        elif isinstance(value, str):
            shown = value
        else:
            shown = json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}: {shown}")
    return "  ".join(parts)


def _error_line(error: dict[str, Any]) -> str:
    name, message = error.get("name") or "Error", error.get("message") or ""
    return printable(f"{name}: {message}" if message else str(name))


# -- events and functions ------------------------------------------------------------------
def events_table(events: Sequence[StoredEvent], width: int = 120) -> Table:
    keep = max(len(e.event.id or "") for e in events) if events else None
    wide = width >= WIDE
    columns = ["event", "name", "received", "runs"] + (["data"] if wide else [])
    table = _table(*columns, wrap="data" if wide else "name", keep=keep)
    for stored in events:
        cells: list[RenderableType] = [
            Text(stored.event.id or ""),
            Text(stored.event.name),
            short_time(stored.received_at),
            str(len(stored.run_ids)),
        ]
        if wide:
            cells.append(Text(preview(stored.event.data, 40)))
        table.add_row(*cells)
    return table


def event_view(stored: StoredEvent, runs: Sequence[Run]) -> RenderableType:
    head = Text.assemble(("event ", "bold"), (stored.event.id or "", "bold"))
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column()
    facts.add_row("name", Text(stored.event.name))
    facts.add_row("received", local_time(stored.received_at))
    if stored.event.ts is not None:
        facts.add_row("ts", local_time(stored.event.ts / 1000))
    data = Text(json.dumps(stored.event.data, indent=2, ensure_ascii=False))
    parts: list[RenderableType] = [head, facts, Text("data", style="bold"), data]
    parts.append(runs_table(runs) if runs else Text("it started no runs", style="dim"))
    return Group(*parts)


def functions_table(functions: Sequence[FunctionDef]) -> Table:
    table = _table("function", "triggers", "retries", "options", wrap="options")
    for fn in functions:
        config = fn.describe()
        triggers = "\n".join(_trigger(t) for t in config.get("triggers") or []) or "-"
        skip = {"id", "name", "retries", "triggers"}
        options = "\n".join(
            f"{key}: {json.dumps(value, ensure_ascii=False)}"
            for key, value in config.items()
            if key not in skip
        )
        table.add_row(Text(fn.id), Text(triggers), str(fn.retries), Text(options))
    return table


def _trigger(trigger: dict[str, Any]) -> str:
    if "cron" in trigger:
        tz = f" ({trigger['tz']})" if trigger.get("tz") else ""
        return f"cron {trigger['cron']}{tz}"
    condition = f" if {trigger['if']}" if trigger.get("if") else ""
    return f"event {trigger['event']}{condition}"


# -- JSON ----------------------------------------------------------------------------------
def run_json(run: Run, *, whole: bool = True) -> dict[str, Any]:
    """A run as JSON: its fields (times in seconds since the epoch); `whole`: with its
    output, steps and history."""
    out = dataclasses.asdict(run)
    if not whole:
        for key in ("output", "steps", "history"):
            out.pop(key, None)
    return out


def event_json(stored: StoredEvent, runs: Sequence[Run] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        **dataclasses.asdict(stored.event),
        "received_at": stored.received_at,
        "run_ids": list(stored.run_ids),
    }
    if runs is not None:
        out["runs"] = [run_json(r, whole=False) for r in runs]
    return out
