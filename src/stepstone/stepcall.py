"""The future a step tool returns: a step already started, as a task would be, but run in
the function's own task when the function awaits it at once.

`await ctx.step.run(...)`, the common case, then costs no task and no turn of the event
loop: the step's coroutine runs inside the awaiting one, and the function goes on as soon
as it returns (a step whose checkpoint commits inline never yields at all). A step not
awaited before the function yields to the loop (steps meant to run in parallel, or
handed to `asyncio.gather`, `wait`, `wait_for`) starts on the loop's next turn as a task
of its own, which is when a task made at the same moment would have started: "created
before any await, they run in parallel" holds either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class StepCall(asyncio.Future[T]):
    """A future resolved by `coro`: run inline by the first `await` that comes before the
    loop's next turn, else as a task from that turn on. `ended(self)` is called once the
    step is over, either way, before anything awaiting it resumes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, T],
        ended: Callable[[StepCall[Any]], None],
    ) -> None:
        super().__init__(loop=loop)
        self._coro: Coroutine[Any, Any, T] | None = coro
        self._ended = ended
        self._task: asyncio.Task[T] | None = None
        self._starting: asyncio.Handle | None = loop.call_soon(self._start_as_task)

    def _start_as_task(self) -> None:
        self._starting = None
        coro, self._coro = self._coro, None
        if coro is None:
            return
        if self.done():  # cancelled before it started
            coro.close()
            self._ended(self)
            return
        self._task = task = self.get_loop().create_task(coro)
        task.add_done_callback(self._take_outcome)

    def _take_outcome(self, task: asyncio.Task[T]) -> None:
        self._ended(self)
        if self.done():
            if not task.cancelled():
                task.exception()  # seen through this future's cancel, not logged again
            return
        if task.cancelled():
            super().cancel()
            return
        error = task.exception()
        if error is None:
            self.set_result(task.result())
        else:
            self.set_exception(error)
            self.exception()  # a step nobody awaited (the function had ended) is not logged

    def cancel(self, msg: Any | None = None) -> bool:
        if self._task is not None:
            return self._task.cancel(msg)  # this future ends with the task
        if self._starting is not None:  # not started: it never runs
            self._starting.cancel()
            self._starting = None
            coro, self._coro = self._coro, None
            if coro is not None:
                coro.close()
                self._ended(self)
        return super().cancel(msg)

    def __await__(self) -> Generator[Any, None, T]:
        coro = self._coro
        if coro is None or self._starting is None:
            return (yield from super().__await__())  # started as a task, or over
        self._starting.cancel()
        self._starting, self._coro = None, None
        try:
            value = yield from coro.__await__()
        except asyncio.CancelledError:
            self._ended(self)
            if not self.done():
                super().cancel()
            raise
        except BaseException as exc:
            self._ended(self)
            if not self.done():
                self.set_exception(exc)
                self.exception()  # raised to the awaiter here: not "never retrieved"
            # the error's traceback holds this frame: without `self` in it, the future
            # holding the error is no cycle, and is freed when its awaiter lets go
            del self
            raise
        self._ended(self)
        if not self.done():
            self.set_result(value)
        return value

    __iter__ = __await__
