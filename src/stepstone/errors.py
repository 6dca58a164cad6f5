"""Every error stepstone raises derives from StepstoneError and carries a `code`."""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta
from typing import Any


class StepstoneError(Exception):
    """A stepstone error."""

    code = "stepstone_error"


class ConfigError(StepstoneError, ValueError):
    """Invalid configuration or function definition."""

    code = "config_error"


class AppIdTakenError(ConfigError):
    """A Python app and an SDK app asked for the same app id in one database: each would
    take the other's functions away."""


class EventError(StepstoneError, ValueError):
    """An event was refused: it is malformed or too large."""

    code = "invalid_event"


class NonRetriableError(StepstoneError):
    """Raise from a step or a function to stop retrying at once."""

    code = "non_retriable"


class RetryAfterError(StepstoneError):
    """Raise to retry no earlier than `retry_after` (seconds, timedelta or datetime)."""

    code = "retry_after"

    def __init__(self, message: str, retry_after: float | timedelta | datetime) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StepError(StepstoneError):
    """A step used all its attempts; raised inside the function at the step's call.

    It carries the step's last error as `name`, `message` and `stack` (the attributes code
    written against the reference SDKs reads), the failed step's `step_id`, and the saved
    form of that error as `error`. `str(err)` is the message.
    """

    code = "step_failed"

    def __init__(self, step_id: str, error: dict[str, Any]) -> None:
        self.step_id = step_id
        self.error = dict(error)
        self.name = str(error.get("name") or "Error")
        self.message = str(error.get("message") or "")
        self.stack = str(error.get("stack") or "")
        super().__init__(self.message)


class SerializationError(NonRetriableError, TypeError):
    """A value could not be saved as JSON."""

    code = "unserializable"


class LimitExceededError(NonRetriableError):
    """A size or count limit was exceeded."""

    code = "limit_exceeded"


class NestedStepError(NonRetriableError):
    """A step tool was called inside a step's handler."""

    code = "nested_step"


class InvalidStepIdError(NonRetriableError, ValueError):
    """A step id is not a non-empty string of at most 256 characters."""

    code = "invalid_step_id"


class StorageError(StepstoneError):
    """The database could not be written (a full disk, a read-only file, a lost server)."""

    code = "storage_error"


class LeaseLostError(StepstoneError):
    """This worker no longer owns the run: another worker took it over."""

    code = "lease_lost"


class RunNotFoundError(StepstoneError, LookupError):
    """No run has this id."""

    code = "run_not_found"


def error_record(name: str, message: str, stack: str = "") -> dict[str, Any]:
    """The saved form of an error, as runs, steps and the SDK wire protocol keep it."""
    return {"name": name, "message": message, "stack": stack}


def describe_error(exc: BaseException) -> dict[str, Any]:
    """The saved form of an exception."""
    if isinstance(exc, StepError):
        return dict(exc.error)
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return error_record(type(exc).__name__, str(exc), stack)
