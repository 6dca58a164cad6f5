"""How the command line prints logs: rich on a terminal, plain lines otherwise, or JSON."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any, TextIO

FORMATS = ("auto", "rich", "plain", "json")
LEVELS = ("debug", "info", "warning", "error")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a run event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        summary, _, stack = message.partition("\n")
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": summary,
        }
        fields = getattr(record, "stepstone", None)
        if isinstance(fields, dict):
            out.update(fields)
        if stack:
            out["stack"] = stack
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send stepstone's (and everyone's) logs to `stream` (stderr) at `level`, in `fmt`."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "rich" if stream.isatty() else "plain"
    handler: logging.Handler
    if fmt == "rich":
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(
            console=Console(file=stream),
            markup=False,  # messages carry user data: never read as markup
            show_path=False,
            log_time_format="%H:%M:%S",
            omit_repeated_times=False,
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if level.lower() == "debug":
        # the libraries' own chatter stays at INFO: DEBUG is for stepstone's run events
        for name in ("asyncio", "httpx", "httpcore", "uvicorn", "psycopg"):
            logging.getLogger(name).setLevel(logging.INFO)
