"""stepstone: durable step functions for Python."""

from .app import App
from .clock import Clock
from .errors import (
    ConfigError,
    EventError,
    LeaseLostError,
    LimitExceededError,
    NestedStepError,
    NonRetriableError,
    RetryAfterError,
    RunNotFoundError,
    SerializationError,
    StepError,
    StepstoneError,
)
from .function import CronTrigger, EventTrigger, FunctionDef, on_cron, on_event
from .limits import Limits
from .options import Cancel, Timeouts
from .records import Event, HistoryEntry, Run, RunStatus, StepRecord, StepStatus
from .retry import default_backoff
from .step import Context, Step, SyncStep

__version__ = "0.1.0"

__all__ = [
    "App",
    "Cancel",
    "Clock",
    "ConfigError",
    "Context",
    "CronTrigger",
    "Event",
    "EventError",
    "EventTrigger",
    "FunctionDef",
    "HistoryEntry",
    "LeaseLostError",
    "LimitExceededError",
    "Limits",
    "NestedStepError",
    "NonRetriableError",
    "RetryAfterError",
    "Run",
    "RunNotFoundError",
    "RunStatus",
    "SerializationError",
    "Step",
    "StepError",
    "StepRecord",
    "StepStatus",
    "StepstoneError",
    "SyncStep",
    "Timeouts",
    "default_backoff",
    "on_cron",
    "on_event",
]
