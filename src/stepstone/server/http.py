"""Request and response helpers shared by the event intake and the REST API."""

from __future__ import annotations

import json
import sys
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

MIB = 1024 * 1024
DEFAULT_MAX_BODY = 4 * MIB


class ApiError(Exception):
    """An answer of `status` with `{"error": message, "status": status}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to be over `limit` bytes.

    A declared Content-Length over the limit is refused before a byte of the body is
    read; a chunked body is read only until it passes the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise ApiError(400, "the Content-Length header is not a number")
        if int(declared) > limit:
            raise ApiError(413, f"the body is {declared} bytes, over the limit of {limit}")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise ApiError(413, f"the body is over the limit of {limit} bytes")
    except ClientDisconnect:
        # the client left, or its body came too slowly (the server has answered 408)
        raise ApiError(408, "the request body did not arrive") from None
    return bytes(body)


async def read_json(request: Request, limit: int, *, empty: Any = ...) -> Any:
    """The body parsed as JSON; `empty` (when given) stands for an empty body."""
    body = await read_body(request, limit)
    if not body.strip():
        if empty is not ...:
            return empty
        raise ApiError(400, "the body is empty: send JSON")
    try:
        # JSON is UTF-8 (RFC 8259), and has no NaN or Infinity
        return json.loads(body.decode("utf-8-sig"), parse_constant=_no_constant, parse_int=_int)
    except _NotJson as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not valid JSON: it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "the body is not valid JSON: it is nested too deeply") from None


class _NotJson(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _int(digits: str) -> int:
    # Python refuses to convert longer ones, and would raise ValueError mid-parse
    limit = sys.get_int_max_str_digits()
    if limit and len(digits.lstrip("-")) > limit:
        raise _NotJson(f"an integer has more than {limit} digits")
    return int(digits)
