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
from .jsontext import compact_encoder

KIB = 1024
MIB = 1024 * KIB


class _Unserializable(TypeError):
    def __init__(self, value: Any, path: str) -> None:
        super().__init__(path)
        self.value = value
        self.path = path


def _default(value: Any) -> Any:
    """A JSON-ready stand-in for a value json does not know; nested values come back here."""
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


def _find_unserializable(value: Any, path: str) -> None:
    """Walk `value` as json would, and raise _Unserializable where it cannot go on."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Unserializable(value, path)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise _Unserializable(key, f"{path} key".strip())
            _find_unserializable(item, f"{path}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _find_unserializable(item, f"{path}[{index}]")
        return
    try:
        stand_in = _default(value)
    except TypeError:
        raise _Unserializable(value, path) from None
    if not isinstance(value, BaseModel):  # pydantic has already checked its own fields
        _find_unserializable(stand_in, path)


# one encoder for every value (jsontext.py says why)
_encode = compact_encoder(ensure_ascii=False, allow_nan=False, default=_default)
# values that JSON gives back as they went in: a step returning one is handed it as is
PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


def dumps(value: Any, *, what: str = "value") -> str:
    """Serialize to compact JSON, or raise SerializationError naming `what` and the type."""
    try:
        return _encode(value)
    except (TypeError, ValueError, RecursionError):
        pass  # the slow walk below finds where the offending value is
    try:
        _find_unserializable(value, "")
    except RecursionError:
        raise SerializationError(f"{what} is nested too deeply to save as JSON") from None
    except _Unserializable as exc:
        where = f" at {exc.path}" if exc.path else ""
        type_name = type(exc.value).__qualname__
        if isinstance(exc.value, float):
            type_name = f"float {exc.value!r}"  # NaN and infinities have no JSON form
        raise SerializationError(
            f"{what} is not JSON-serializable: {type_name} value{where}. Return plain data "
            "(dict, list, str, int, float, bool, None), a dataclass or a pydantic model."
        ) from None
    raise SerializationError(f"{what} could not be saved as JSON")


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
    """Bytes in UTF-8."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))
