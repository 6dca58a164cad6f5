"""stepstone's pytest plugin, registered through the `pytest11` entry point: installing
stepstone is all the configuration users' tests need.

- `async def` tests run in a fresh event loop each, unless another plugin takes them
  (pytest-asyncio, anyio: a test they mark is theirs);
- the `stepstone_clock` fixture is a `TestClock`;
- the `stepstone_run` fixture is `run_function` for plain (non-async) tests.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from .records import Run
from .testing import TestClock, run_function

OTHER_RUNNERS = ("asyncio", "anyio", "trio")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test):
        return None
    if any(pyfuncitem.get_closest_marker(name) for name in OTHER_RUNNERS):
        return None
    names = inspect.signature(test).parameters
    asyncio.run(test(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


@pytest.fixture
def stepstone_clock() -> TestClock:
    """A clock that moves only when the test says so: `App(clock=stepstone_clock)`."""
    return TestClock()


@pytest.fixture
def stepstone_run() -> Callable[..., Run]:
    """`run_function(app, function, event, steps=..., clock=...)` from a plain test."""

    def run(*args: Any, **kwargs: Any) -> Run:
        return asyncio.run(run_function(*args, **kwargs))

    return run
