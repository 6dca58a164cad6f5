"""Function definitions: refused at definition time with the function's id in the message."""

from __future__ import annotations

from typing import Any

import pytest

import stepstone
from stepstone.function import function_from_config


def _define(app: stepstone.App, **options: Any) -> None:
    app.function(**options)(lambda ctx: None)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"id": "", "trigger": "a/b"}, "a non-empty string of at most 128 characters; got 0"),
        ({"id": "f" * 129, "trigger": "a/b"}, "at most 128 characters; got 129 characters"),
        ({"id": 7, "trigger": "a/b"}, "a function id is a non-empty string"),
        ({"id": "f", "trigger": 42}, "function 'f': trigger 0 must be"),
        ({"id": "f", "trigger": stepstone.on_cron("61 * * * *")}, "not a valid cron"),
        (
            {"id": "f", "trigger": stepstone.on_cron("0 * * * *", tz="Mars/Base")},
            "unknown timezone",
        ),
        (
            {"id": "f", "trigger": stepstone.on_event("a/b", if_="event.data.x ==")},
            "does not compile",
        ),
        ({"id": "f", "trigger": ["a/b"] * 11}, "at most 10 triggers"),
        ({"id": "f", "trigger": "a/b", "retries": 21}, "retries must be"),
        ({"id": "f", "trigger": "a/b", "cancel_on": [{"event": "x"}] * 6}, "at most 5 cancel_on"),
        ({"id": "f", "trigger": "a/b", "timeouts": {"finish": "2y"}}, "timeouts.finish"),
        ({"id": "f", "trigger": {"event": "a/b", "when": 1}}, "unknown key(s) when"),
    ],
)
def test_invalid_definitions(options: dict[str, Any], message: str) -> None:
    app = stepstone.App("defs", database="memory://")
    with pytest.raises(stepstone.ConfigError) as info:
        _define(app, **options)
    assert message in str(info.value)


def test_duplicate_function_ids_are_refused() -> None:
    app = stepstone.App("defs", database="memory://")
    _define(app, id="same", trigger="a/b")
    with pytest.raises(stepstone.ConfigError, match="'same' is already registered"):
        _define(app, id="same", trigger="c/d")


def test_published_config_round_trips() -> None:
    app = stepstone.App("defs", database="memory://")

    @app.function(
        id="everything",
        trigger=[
            stepstone.on_event("a/*", if_="event.data.x > 1"),
            stepstone.on_cron("0 9 * * *", tz="UTC"),
        ],
        retries=2,
        cancel_on=[
            stepstone.Cancel("a/cancel", if_="event.data.id == async.data.id", timeout="1h")
        ],
        timeouts={"start": "1m", "finish": "1h"},
        concurrency=[stepstone.Concurrency(3, key="event.data.user"), 10],
        throttle=stepstone.Throttle(5, "1m", burst=2),
        rate_limit=stepstone.RateLimit(100, "1h", key="event.data.user"),
        priority=stepstone.Priority("event.data.p"),
        idempotency="event.data.id",
        singleton=stepstone.Singleton(key="event.data.user", mode="cancel"),
    )
    def everything(ctx: stepstone.Context) -> None:
        return None

    config = everything.describe()
    assert function_from_config(config).describe() == config
    assert config["concurrency"][0] == {"limit": 3, "key": "event.data.user", "scope": "fn"}


def test_importing_stepstone_leaves_the_cel_package_for_first_use() -> None:
    """`cel` costs ~100 ms to import: a process that never compiles an expression (a
    sender, the CLI's reads) does not pay it, and the first expression still compiles."""
    import subprocess
    import sys

    code = (
        "import sys, stepstone\n"
        "print('cel' in sys.modules)\n"
        "from stepstone.expressions import Expression\n"
        "print(Expression('event.data.n > 1', where='x').matches({'event': {'data': {'n': 2}}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
