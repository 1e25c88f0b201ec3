"""The console's routes in the OpenAPI document (:mod:`trackd.gateway.console`)."""

from __future__ import annotations

from trackd.gateway.console import API_PATH, PAGE_PATH
from trackd.gateway.openapi.schemas import Schema, string

ERROR: Schema = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": string(), "message": string()}}}}
BEARER: list[Schema] = [{"bearer": []}]
REQUEST_ID = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
_ERRORS = {str(status): {"description": description, "headers": {
               **REQUEST_ID, **({"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
                                if status == 503 else {})},
                         "content": {"application/json": {"schema": ERROR}}}
           for status, description in ((401, "No key, or the key is not valid"),
                                       (403, "The key lacks `events:read`"),
                                       (503, "trackd cannot answer now"))}
_STREAM = {"description": "Server-sent events, until the client goes away",
           "headers": REQUEST_ID,
           "content": {"text/event-stream": {"schema": {"type": "string"}}}}
_COUNT = {"type": "object", "required": ["name", "count"],
          "properties": {"name": string(), "count": {"type": "integer"}}}
OVERVIEW: Schema = {
    "type": "object",
    "required": ["minutes", "top_event_names", "top_violations", "webhooks",
                 "webhooks_error"],
    "properties": {
        "minutes": {"type": "array", "items": {
            "type": "object",
            "required": ["minute", "stored", "duplicates", "rate_limited", "refused"],
            "properties": {
                "minute": string(), "stored": {"type": "integer"},
                "duplicates": {"type": "integer"}, "rate_limited": {"type": "integer"},
                "refused": {"type": "object",
                            "additionalProperties": {"type": "integer"}}}}},
        "top_event_names": {"type": "array", "items": _COUNT},
        "top_violations": {"type": "array", "items": _COUNT},
        "webhooks": {"type": ["array", "null"], "items": {"type": "object"}},
        "webhooks_error": {"type": ["string", "null"]},
    }}


def _get(operation_id: str, summary: str, description: str, ok: Schema,
         security: list[Schema], parameters: list[Schema] | None = None) -> Schema:
    responses = {"200": ok, **(_ERRORS if security else {})}
    operation: Schema = {"tags": ["Console"], "operationId": operation_id,
                         "summary": summary, "description": description}
    if parameters:
        operation["parameters"] = parameters
    operation["responses"] = responses
    operation["security"] = security
    return {"get": operation}


def console_paths() -> dict[str, Schema]:
    return {
        PAGE_PATH: _get("getConsole", "The console page",
                        "An HTML page (its script and style from `/console/assets/`); "
                        "docs/console.md says what it shows.",
                        {"description": "An HTML page", "headers": REQUEST_ID,
                         "content": {"text/html": {"schema": {"type": "string"}}}}, []),
        f"{API_PATH}/overview": _get(
            "getConsoleOverview", "The last hour, per minute",
            "DecisionService.GetOverview and WebhookService.ListEndpoints (which needs "
            "`webhooks:manage`; without it `webhooks` is null and `webhooks_error` says "
            "why). Needs `events:read`.",
            {"description": "Counts", "headers": REQUEST_ID,
             "content": {"application/json": {"schema": OVERVIEW}}},
            BEARER),
        f"{API_PATH}/events": _get(
            "streamConsoleEvents", "Stored events, live",
            "TrackingService.Subscribe from now (or just after `cursor`), each event an "
            "`event: event` frame whose data is the event as JSON, with its `cursor`. "
            "Needs `events:read`.", _STREAM, BEARER,
            [{"name": "cursor", "in": "query", "required": False,
              "description": "Resume just after this event's cursor.",
              "schema": string()}]),
        f"{API_PATH}/decisions": _get(
            "streamConsoleDecisions", "Decisions, live",
            "DecisionService.WatchDecisions from ten minutes back: `event: decision` and "
            "`event: sampling` frames. Needs `events:read`.", _STREAM, BEARER),
    }
