"""CEL expressions over events: trigger filters, wait matches, flow-control keys."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError


class Expression:
    """A compiled CEL expression; `where` names its place in error messages."""

    __slots__ = ("_program", "source")

    def __init__(self, source: str, *, where: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ConfigError(f"{where}: expected a CEL expression string, got {source!r}")
        # imported on first use: the package takes ~100 ms to import (it loads its own
        # CLI), which every process importing stepstone would otherwise pay
        import cel

        try:
            self._program = cel.compile(source)
        except ValueError as exc:
            raise ConfigError(f"{where}: the CEL expression does not compile: {exc}") from None
        self.source = source

    def evaluate(self, variables: dict[str, Any]) -> Any:
        """The value, or raise LookupError/ValueError/TypeError when it cannot be computed."""
        return self._program.execute(variables)

    def matches(self, variables: dict[str, Any]) -> bool:
        """True only when the expression evaluates to true; errors (a missing field) are False."""
        try:
            return self.evaluate(variables) is True
        except (LookupError, ValueError, TypeError, RuntimeError):
            return False

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"
