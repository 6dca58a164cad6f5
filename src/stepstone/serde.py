"""The JSON round trip every saved value goes through, and its size limits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter

from .errors import SerializationError

KIB = 1024
MIB = 1024 * KIB


class _Unserializable(TypeError):
    def __init__(self, value: Any, path: str) -> None:
        super().__init__(path)
        self.value = value
        self.path = path


def _to_jsonable(value: Any, path: str) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Unserializable(value, path)
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise _Unserializable(key, f"{path} key")
            skey = key if isinstance(key, str) else json.dumps(key)
            out[skey] = _to_jsonable(item, f"{path}[{skey!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _to_jsonable(getattr(value, f.name), f"{path}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, enum.Enum):
        return _to_jsonable(value.value, path)
    raise _Unserializable(value, path)


def _default(value: Any) -> Any:
    # Called by json for types it does not know; nested values come back through it.
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(type(value).__qualname__)


def dumps(value: Any, *, what: str = "value") -> str:
    """Serialize to compact JSON, or raise SerializationError naming `what` and the type."""
    try:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default
        )
    except (TypeError, ValueError, RecursionError):
        pass  # the slow walk below finds where the offending value is
    try:
        plain = _to_jsonable(value, "")
    except RecursionError:
        raise SerializationError(f"{what} is nested too deeply to save as JSON") from None
    except _Unserializable as exc:
        where = f" at {exc.path}" if exc.path else ""
        type_name = type(exc.value).__qualname__
        raise SerializationError(
            f"{what} is not JSON-serializable: {type_name} value{where}. Return plain data "
            "(dict, list, str, int, float, bool, None), a dataclass or a pydantic model."
        ) from None
    return json.dumps(plain, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def round_trip(value: Any, *, what: str = "value") -> Any:
    return json.loads(dumps(value, what=what))


def convert(value: Any, output_type: Any) -> Any:
    """Turn a parsed JSON value back into `output_type` (pydantic model, dataclass, ...)."""
    if output_type is None:
        return value
    return TypeAdapter(output_type).validate_python(value)


def size_of(text: str) -> int:
    return len(text.encode("utf-8"))
