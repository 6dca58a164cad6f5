"""Checks each answer of the API against its own OpenAPI document: a response's status must
be documented for its operation, and its body must validate against the schema there."""

from __future__ import annotations

import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from stepstone.server.openapi import openapi_document


class ResponseChecker:
    def __init__(self) -> None:
        self.doc = openapi_document("check")
        Draft202012Validator.check_schema({"$defs": self.doc["components"]["schemas"]})
        self._paths = [
            (re.compile("^" + re.sub(r"{\w+}", "[^/]+", path) + "$"), path)
            for path in sorted(self.doc["paths"], key=lambda p: p.count("{"))
        ]
        self.checked: set[tuple[str, str, str]] = set()  # (method, path, status)

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template in self._paths:
            if pattern.match(path):
                op = self.doc["paths"][template].get(method)
                return (template, op) if op is not None else None
        return None

    def __call__(self, response: httpx.Response) -> None:
        """An httpx response hook."""
        request = response.request
        found = self._operation(request.method.lower(), request.url.path)
        if found is None:
            return  # not an operation of the API (a 404 or 405 for an unknown one)
        template, op = found
        response.read()
        status = str(response.status_code)
        documented = op["responses"].get(status)
        assert documented is not None, (
            f"{request.method} {template} answered {status}, which its document does not "
            f"list: {response.text[:300]}"
        )
        content = documented.get("content")
        if content is None:
            return
        schema = {
            **content["application/json"]["schema"],
            "components": self.doc["components"],
        }
        errors = sorted(
            Draft202012Validator(schema).iter_errors(response.json()),
            key=lambda e: list(e.absolute_path),
        )
        assert not errors, (
            f"{request.method} {template} {status} does not match its document: "
            + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
        )
        self.checked.add((request.method.lower(), template, status))


def checked_client(base: httpx.Client, checker: ResponseChecker) -> httpx.Client:
    base.event_hooks["response"].append(checker)
    return base
