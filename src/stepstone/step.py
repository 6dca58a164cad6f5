"""The step tools used inside functions, and the context a function receives.

The async `Step` is the one implementation; `SyncStep` hands each call to the run's
event loop and blocks the calling thread until it is done (but for a step.run of a `def`
handler, which runs on the calling thread, its checkpoint on the loop).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from .durations import Duration
from .records import Event

T = TypeVar("T")


class RunningStep(NamedTuple):
    """The step whose handler is running in this context (a task or a thread); a tuple,
    since every step makes one."""

    run_id: str
    label: str  # the step's id as shown, `repeat #2` for a repeat
    hashed_id: str
    attempt: int  # 0-based, of this step


# Set by the executor around a step's handler: each step runs in a task of its own (and a
# sync handler in a copy of that task's context), so parallel steps each see their own.
running_step: contextvars.ContextVar[RunningStep | None] = contextvars.ContextVar(
    "stepstone_running_step", default=None
)


class StepHost(Protocol):
    """What the executor offers to the step tools."""

    def run_step(
        self, step_id: str, handler: Callable[..., Any], args: tuple[Any, ...], output_type: Any
    ) -> asyncio.Future[Any]: ...

    def sleep_until(
        self, step_id: str, when: float | None, duration: float | None
    ) -> asyncio.Future[Any]: ...

    def wait_for_event(
        self, step_id: str, event: str, timeout: Duration, if_: str | None
    ) -> asyncio.Future[Any]: ...

    def invoke(
        self, step_id: str, function: Any, data: dict[str, Any] | None, timeout: Duration | None
    ) -> asyncio.Future[Any]: ...

    def send_event(self, step_id: str, events: Event | Sequence[Event]) -> asyncio.Future[Any]: ...

    def run_step_here(
        self, step_id: str, handler: Callable[..., Any], args: tuple[Any, ...], output_type: Any
    ) -> Any: ...

    def check_not_in_step(self, tool: str, step_id: str) -> None: ...


class Step:
    """Durable building blocks; each returns an awaitable that has already started."""

    def __init__(self, host: StepHost) -> None:
        self._host = host

    def run(
        self, id: str, handler: Callable[..., T | Awaitable[T]], *args: Any, output_type: Any = None
    ) -> asyncio.Future[T]:
        """Run `handler(*args)` as a retriable step whose JSON result is saved."""
        self._host.check_not_in_step("step.run", id)
        return self._host.run_step(id, handler, args, output_type)

    def sleep(self, id: str, duration: Duration) -> asyncio.Future[None]:
        """Pause the run for `duration` (seconds, timedelta or '1h30m'); holds no worker."""
        from .durations import parse_duration

        self._host.check_not_in_step("step.sleep", id)
        seconds = parse_duration(duration, what=f"step.sleep({id!r}) duration")
        return self._host.sleep_until(id, None, seconds)

    def sleep_until(self, id: str, when: datetime | float | str) -> asyncio.Future[None]:
        """Pause the run until `when` (a datetime, ISO 8601 string or epoch seconds)."""
        from .durations import to_timestamp

        self._host.check_not_in_step("step.sleep_until", id)
        return self._host.sleep_until(id, to_timestamp(when), None)

    def wait_for_event(
        self, id: str, *, event: str, timeout: Duration, if_: str | None = None
    ) -> asyncio.Future[Event | None]:
        """Wait for an event named `event` matching `if_`; None when `timeout` passes first."""
        self._host.check_not_in_step("step.wait_for_event", id)
        return self._host.wait_for_event(id, event, timeout, if_)

    def invoke(
        self,
        id: str,
        *,
        function: Any,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> asyncio.Future[Any]:
        """Run another function with `data` as its event data and return its result."""
        self._host.check_not_in_step("step.invoke", id)
        return self._host.invoke(id, function, data, timeout)

    def send_event(self, id: str, events: Event | Sequence[Event]) -> asyncio.Future[list[str]]:
        """Send events once, however often the run replays; returns their ids."""
        self._host.check_not_in_step("step.send_event", id)
        return self._host.send_event(id, events)


class SyncStep:
    """The step tools for `def` functions: each call blocks until its result is ready."""

    def __init__(self, step: Step, loop: asyncio.AbstractEventLoop) -> None:
        self._step = step
        self._loop = loop

    def _call(self, start: Callable[[], asyncio.Future[T]]) -> T:
        async def started() -> T:
            return await start()

        return asyncio.run_coroutine_threadsafe(started(), self._loop).result()

    def run(self, id: str, handler: Callable[..., T], *args: Any, output_type: Any = None) -> T:
        host = self._step._host
        host.check_not_in_step("step.run", id)
        return host.run_step_here(id, handler, args, output_type)  # type: ignore[no-any-return]

    def sleep(self, id: str, duration: Duration) -> None:
        self._step._host.check_not_in_step("step.sleep", id)
        self._call(lambda: self._step.sleep(id, duration))

    def sleep_until(self, id: str, when: datetime | float | str) -> None:
        self._step._host.check_not_in_step("step.sleep_until", id)
        self._call(lambda: self._step.sleep_until(id, when))

    def wait_for_event(
        self, id: str, *, event: str, timeout: Duration, if_: str | None = None
    ) -> Event | None:
        self._step._host.check_not_in_step("step.wait_for_event", id)
        return self._call(
            lambda: self._step.wait_for_event(id, event=event, timeout=timeout, if_=if_)
        )

    def invoke(
        self,
        id: str,
        *,
        function: Any,
        data: dict[str, Any] | None = None,
        timeout: Duration | None = None,
    ) -> Any:
        self._step._host.check_not_in_step("step.invoke", id)
        return self._call(
            lambda: self._step.invoke(id, function=function, data=data, timeout=timeout)
        )

    def send_event(self, id: str, events: Event | Sequence[Event]) -> list[str]:
        self._step._host.check_not_in_step("step.send_event", id)
        return self._call(lambda: self._step.send_event(id, events))


@dataclass(frozen=True)
class Context:
    """What a function receives: its event(s), the step tools and facts about the run."""

    event: Event
    events: list[Event]
    step: Any  # Step for async functions, SyncStep for sync ones
    run_id: str
    function_attempt: int  # 0-based attempt of the function's code outside steps
    function_id: str
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]

    @property
    def attempt(self) -> int:
        """0-based: inside a step's handler, that step's attempt (so a handler can switch to
        a fallback on its later retries); elsewhere, the function's attempt."""
        running = running_step.get()
        if running is not None and running.run_id == self.run_id:
            return running.attempt
        return self.function_attempt
