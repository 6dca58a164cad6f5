"""stepstone: durable step functions for Python."""

from .app import App
from .clock import Clock
from .errors import (
    AppIdTakenError,
    ConfigError,
    EventError,
    InvalidStepIdError,
    LeaseLostError,
    LimitExceededError,
    NestedStepError,
    NonRetriableError,
    RetryAfterError,
    RunNotFoundError,
    SerializationError,
    StepError,
    StepstoneError,
    StorageError,
)
from .flow import Batch, Concurrency, Debounce, Priority, RateLimit, Singleton, Throttle
from .function import CronTrigger, EventTrigger, FunctionDef, on_cron, on_event
from .limits import Limits
from .options import Cancel, Timeouts
from .records import Event, HistoryEntry, Page, Run, RunStatus, StepRecord, StepStatus
from .retry import default_backoff
from .step import Context, Step, SyncStep

__version__ = "0.1.0"

__all__ = [
    "App",
    "AppIdTakenError",
    "Batch",
    "Cancel",
    "Clock",
    "Concurrency",
    "ConfigError",
    "Context",
    "CronTrigger",
    "Debounce",
    "Event",
    "EventError",
    "EventTrigger",
    "FunctionDef",
    "HistoryEntry",
    "InvalidStepIdError",
    "LeaseLostError",
    "LimitExceededError",
    "Limits",
    "NestedStepError",
    "NonRetriableError",
    "Page",
    "Priority",
    "RateLimit",
    "RetryAfterError",
    "Run",
    "RunNotFoundError",
    "RunStatus",
    "SerializationError",
    "Singleton",
    "Step",
    "StepError",
    "StepRecord",
    "StepStatus",
    "StepstoneError",
    "StorageError",
    "SyncStep",
    "Throttle",
    "Timeouts",
    "default_backoff",
    "on_cron",
    "on_event",
]
