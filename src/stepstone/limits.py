"""Size and count limits, configurable per App within fixed ceilings."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError
from .serde import KIB, MIB


@dataclass(frozen=True)
class Limits:
    max_steps: int = 1000
    max_step_output: int = 4 * MIB
    max_run_state: int = 32 * MIB
    max_event_size: int = 512 * KIB
    max_events_per_send: int = 5000
    max_event_name: int = 256

    def __post_init__(self) -> None:
        _check("max_steps", self.max_steps, 1, 10_000)
        _check("max_step_output", self.max_step_output, 1, 32 * MIB)
        _check("max_run_state", self.max_run_state, 1, 256 * MIB)
        _check("max_event_size", self.max_event_size, 64, 3 * MIB)
        _check("max_events_per_send", self.max_events_per_send, 1, 5000)
        _check("max_event_name", self.max_event_name, 1, 256)


def _check(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"Limits.{name} must be an integer from {low} to {high}, got {value!r}")
