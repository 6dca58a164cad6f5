"""The OpenAPI 3 document of the event intake and the REST API."""

from __future__ import annotations

from typing import Any

from ..records import RunStatus, StepStatus

_ANY: dict[str, Any] = {"description": "any JSON value"}
_TIME = {"type": "number", "description": "seconds since the epoch"}
_MAYBE_TIME = {**_TIME, "nullable": True}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": {"type": "string", "description": "what is wrong, for a person"},
            "status": {"type": "integer", "description": "the HTTP status"},
        },
        ["error", "status"],
    ),
    "EventInput": _object(
        {
            "name": {"type": "string", "maxLength": 256},
            "data": {"type": "object", "additionalProperties": True},
            "id": {"type": "string", "description": "idempotency key: a repeat is ignored"},
            "ts": {"type": "integer", "description": "milliseconds since the epoch"},
            "user": {"type": "object", "additionalProperties": True},
            "v": {"type": "string"},
        },
        ["name"],
    ),
    "Events": {"oneOf": [_ref("EventInput"), {"type": "array", "items": _ref("EventInput")}]},
    "Sent": _object(
        {"ids": {"type": "array", "items": {"type": "string"}}, "status": {"type": "integer"}},
        ["ids", "status"],
    ),
    "Event": _object(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "data": {"type": "object", "additionalProperties": True},
            "ts": {"type": "integer"},
            "user": {"type": "object", "nullable": True, "additionalProperties": True},
            "v": {"type": "string", "nullable": True},
            "received_at": _TIME,
            "run_ids": {"type": "array", "items": {"type": "string"}},
        },
        ["id", "name", "data", "ts", "received_at", "run_ids"],
    ),
    "EventWithRuns": {
        "allOf": [
            _ref("Event"),
            _object({"runs": {"type": "array", "items": _ref("RunSummary")}}, ["runs"]),
        ]
    },
    "ErrorInfo": _object(
        {
            "name": {"type": "string"},
            "message": {"type": "string"},
            "stack": {"type": "string"},
        }
    ),
    "RunSummary": _object(
        {
            "id": {"type": "string"},
            "function_id": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in RunStatus]},
            "attempt": {"type": "integer"},
            "event_ids": {"type": "array", "items": {"type": "string"}},
            "error": {"allOf": [_ref("ErrorInfo")], "nullable": True},
            "created_at": _TIME,
            "started_at": _MAYBE_TIME,
            "ended_at": _MAYBE_TIME,
        },
        ["id", "function_id", "status", "event_ids", "created_at"],
    ),
    "Step": _object(
        {
            "id": {"type": "string", "description": "the id the function gave the step"},
            "occurrence": {
                "type": "integer",
                "description": "which use of the id this is, from 0 (a step in a loop)",
            },
            "hashed_id": {"type": "string"},
            "kind": {"type": "string", "enum": ["run", "sleep", "wait", "invoke", "send"]},
            "status": {"type": "string", "enum": [s.value for s in StepStatus]},
            "attempts": {"type": "integer"},
            "output": _ANY,
            "error": {"allOf": [_ref("ErrorInfo")], "nullable": True},
            "started_at": _MAYBE_TIME,
            "ended_at": _MAYBE_TIME,
            "wake_at": {**_MAYBE_TIME, "description": "when a sleep, wait or retry is due"},
            "detail": {"type": "object", "nullable": True, "additionalProperties": True},
        },
        ["id", "occurrence", "hashed_id", "kind", "status", "attempts"],
    ),
    "HistoryEntry": _object(
        {
            "at": _TIME,
            "kind": {"type": "string"},
            "data": {"type": "object", "additionalProperties": True},
        },
        ["at", "kind", "data"],
    ),
    "Run": {
        "allOf": [
            _ref("RunSummary"),
            _object(
                {
                    "output": _ANY,
                    "steps": {"type": "array", "items": _ref("Step")},
                    "history": {"type": "array", "items": _ref("HistoryEntry")},
                    "events": {"type": "array", "items": _ref("Event")},
                },
                ["steps", "history", "events"],
            ),
        ]
    },
    "RunPage": _object(
        {
            "runs": {"type": "array", "items": _ref("RunSummary")},
            "next_cursor": {"type": "string", "nullable": True},
        },
        ["runs", "next_cursor"],
    ),
    "EventPage": _object(
        {
            "events": {"type": "array", "items": _ref("Event")},
            "next_cursor": {"type": "string", "nullable": True},
        },
        ["events", "next_cursor"],
    ),
    "Function": _object(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "retries": {"type": "integer"},
            "triggers": {
                "type": "array",
                "items": _object(
                    {
                        "event": {"type": "string"},
                        "if": {"type": "string"},
                        "cron": {"type": "string"},
                        "tz": {"type": "string", "nullable": True},
                    }
                ),
            },
        },
        ["id", "name", "retries", "triggers"],
    ),
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, **_json(schema)}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "bad input: the error says what is wrong",
        401: "missing or wrong credentials",
        404: "not found",
        409: "the run has already ended",
        413: "the body is too large",
    }
    return {str(c): {"description": words[c], **_json(_ref("Error"))} for c in codes}


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
                    "200": _ok(
                        "functions",
                        _object({"functions": {"type": "array", "items": _ref("Function")}}),
                    ),
                    **_errors(401),
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
                    _LIMIT,
                    _param("cursor", "query", "next_cursor of the previous page", _STRING),
                ],
                "responses": {"200": _ok("a page of runs", _ref("RunPage")), **_errors(400, 401)},
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
                    "200": _ok(
                        "cancellation requested",
                        _object(
                            {
                                "run_id": _STRING,
                                "cancel_requested": {"type": "boolean"},
                            }
                        ),
                    ),
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
                "requestBody": {
                    "required": False,
                    **_json(_object({"from_step": {"type": "string"}})),
                },
                "responses": {
                    "200": _ok(
                        "the new run",
                        _object({"run_id": _STRING, "rerun_of": _STRING}, ["run_id"]),
                    ),
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
    return {
        "openapi": "3.0.3",
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
