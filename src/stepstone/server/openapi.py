"""The OpenAPI 3 document of the event intake and the REST API."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from ..records import RunStatus
from . import models


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _schemas() -> dict[str, Any]:
    """The JSON Schemas (2020-12, as OpenAPI 3.1 takes them) of the API's models."""
    _, found = models_json_schema(
        [(m, "serialization") for m in models.RESPONSES]
        + [(m, "validation") for m in models.REQUESTS],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = found["$defs"]
    events = {"oneOf": [_ref("EventInput"), {"type": "array", "items": _ref("EventInput")}]}
    return {**schemas, "Events": events}


SCHEMAS = _schemas()


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, **_json(schema)}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "bad input: the error says what is wrong",
        401: "missing or wrong credentials",
        403: "the request was made by a page of another site (Sec-Fetch-Site: cross-site)",
        404: "not found",
        409: "the run has already ended",
        413: "the body is too large",
    }
    return {str(c): {"description": words[c], **_json(_ref("ErrorBody"))} for c in codes}


def _param(name: str, where: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


_STRING = {"type": "string"}
_LIMIT = _param("limit", "query", "page size", {"type": "integer", "minimum": 1, "maximum": 1000})
_RUN_ID = _param("run_id", "path", "the run's id", _STRING)
_FUNCTION_ID = _param("function_id", "path", "the function's id", _STRING)
_TIME_PARAM = {"oneOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}


def openapi_document(app_id: str) -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    paths: dict[str, Any] = {
        "/e/{event_key}": {
            "post": {
                "summary": "Send events (one, or an array) with an event key",
                "parameters": [_param("event_key", "path", "a key the operator set", _STRING)],
                "requestBody": {"required": True, **_json(_ref("Events"))},
                "responses": {
                    "200": _ok("the events' ids, in order", _ref("Sent")),
                    **_errors(400, 401, 413),
                },
            }
        },
        "/v1/functions": {
            "get": {
                "summary": "The functions this app serves, with their triggers and options",
                "security": bearer,
                "responses": {
                    "200": _ok("functions", _ref("FunctionList")),
                    **_errors(401),
                },
            }
        },
        "/v1/functions/{function_id}/stats": {
            "get": {
                "summary": "A function's runs of the last hour and day: counts by status and "
                "p50/p95 durations, in time buckets",
                "security": bearer,
                "parameters": [_FUNCTION_ID],
                "responses": {
                    "200": _ok("the stats", _ref("FunctionStats")),
                    **_errors(401, 404),
                },
            }
        },
        "/v1/functions/{function_id}/invoke": {
            "post": {
                "summary": "Start a run of this function alone, with an event "
                "stepstone/function.invoked carrying `data`",
                "security": bearer,
                "parameters": [_FUNCTION_ID],
                "requestBody": {"required": False, **_json(_ref("Invoke"))},
                "responses": {
                    "200": _ok("the new run", _ref("Started")),
                    **_errors(400, 401, 404),
                },
            }
        },
        "/v1/apps": {
            "get": {
                "summary": "The apps written with an official SDK that synced to this server",
                "security": bearer,
                "responses": {"200": _ok("the apps", _ref("AppList")), **_errors(401)},
            }
        },
        "/v1/apps/sync": {
            "post": {
                "summary": "Ask a synced app to sync again (its serve URL is called with PUT)",
                "security": bearer,
                "requestBody": {"required": True, **_json(_ref("Resync"))},
                "responses": {
                    "200": _ok("whether it synced, and why not", _ref("Resynced")),
                    **_errors(400, 401, 404),
                },
            }
        },
        "/v1/runs": {
            "get": {
                "summary": "Runs, newest first",
                "security": bearer,
                "parameters": [
                    _param("function", "query", "only runs of this function id", _STRING),
                    _param(
                        "status",
                        "query",
                        "only runs in this status",
                        {"type": "string", "enum": [s.value for s in RunStatus]},
                    ),
                    _param("created_after", "query", "epoch seconds or ISO 8601", _TIME_PARAM),
                    _param("created_before", "query", "epoch seconds or ISO 8601", _TIME_PARAM),
                    _param(
                        "event",
                        "query",
                        "only runs of events with this name; * matches any characters",
                        _STRING,
                    ),
                    _param(
                        "if",
                        "query",
                        "only runs whose trigger event passes this CEL expression over "
                        '`event`, e.g. event.data.account == "acme" (reads at most 5,000 '
                        "runs per request: follow next_cursor)",
                        _STRING,
                    ),
                    _LIMIT,
                    _param("cursor", "query", "next_cursor of the previous page", _STRING),
                ],
                "responses": {"200": _ok("a page of runs", _ref("RunPage")), **_errors(400, 401)},
            }
        },
        "/v1/runs/bulk": {
            "post": {
                "summary": "Cancel or rerun up to 100 runs; each has its own outcome",
                "security": bearer,
                "requestBody": {"required": True, **_json(_ref("BulkRequest"))},
                "responses": {
                    "200": _ok("each run's outcome, in order", _ref("BulkResult")),
                    **_errors(400, 401),
                },
            }
        },
        "/v1/runs/{run_id}": {
            "get": {
                "summary": "One run: steps, attempts, outputs, errors, history, trigger events",
                "security": bearer,
                "parameters": [_RUN_ID],
                "responses": {"200": _ok("the run", _ref("Run")), **_errors(401, 404)},
            }
        },
        "/v1/runs/{run_id}/cancel": {
            "post": {
                "summary": "Cancel a run: steps running now finish; no new step starts",
                "security": bearer,
                "parameters": [_RUN_ID],
                "responses": {
                    "200": _ok("cancellation requested", _ref("CancelRequested")),
                    **_errors(401, 404, 409),
                },
            }
        },
        "/v1/runs/{run_id}/rerun": {
            "post": {
                "summary": "Start a new run with the same event(s), optionally from a step",
                "description": "With from_step, the new run keeps the completed steps "
                "before that step and runs the rest again.",
                "security": bearer,
                "parameters": [_RUN_ID],
                "requestBody": {"required": False, **_json(_ref("RerunRequest"))},
                "responses": {
                    "200": _ok("the new run", _ref("Rerun")),
                    **_errors(400, 401, 404),
                },
            }
        },
        "/v1/events": {
            "get": {
                "summary": "Events, newest first, with the runs each started",
                "security": bearer,
                "parameters": [
                    _param("name", "query", "only events with this name", _STRING),
                    _LIMIT,
                    _param("cursor", "query", "next_cursor of the previous page", _STRING),
                ],
                "responses": {
                    "200": _ok("a page of events", _ref("EventPage")),
                    **_errors(400, 401),
                },
            },
            "post": {
                "summary": "Send events (one, or an array)",
                "security": bearer,
                "requestBody": {"required": True, **_json(_ref("Events"))},
                "responses": {
                    "200": _ok("the events' ids, in order", _ref("Sent")),
                    **_errors(400, 401, 413),
                },
            },
        },
        "/v1/events/{event_id}": {
            "get": {
                "summary": "One event with the runs it triggered",
                "security": bearer,
                "parameters": [_param("event_id", "path", "the event's id", _STRING)],
                "responses": {
                    "200": _ok("the event", _ref("EventWithRuns")),
                    **_errors(401, 404),
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "an OpenAPI 3 document"}},
            }
        },
    }
    for operations in paths.values():
        for op in operations.values():
            if "security" in op:
                op["responses"].update(_errors(403))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"stepstone API ({app_id})",
            "version": "1",
            "description": "Send events, and read and act on runs. Outside dev mode every "
            "/v1 endpoint but this document needs 'Authorization: Bearer <token>'. "
            "Requests that browsers mark 'Sec-Fetch-Site: cross-site' are refused (403).",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
