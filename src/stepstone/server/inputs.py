"""Paths and query strings the stores could not look up, refused before any handler runs.

A `%00` decodes to NUL, which PostgreSQL's text cannot hold: looking a run up by such an
id failed there with a 500 while SQLite answered 404. Both now answer 400.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from ..events import text_problem
from .http import error_response


class TextGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = refusal(scope)
            if problem is not None:
                await error_response(400, problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def refusal(scope: Scope) -> str | None:
    problem = text_problem(scope["path"])
    if problem is not None:
        return f"the path {problem}"
    query = scope["query_string"].decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        problem = text_problem(name)
        if problem is not None:
            return f"a query parameter's name {problem}"
        problem = text_problem(value)
        if problem is not None:
            return f"the query parameter {name} {problem}"
    return None
