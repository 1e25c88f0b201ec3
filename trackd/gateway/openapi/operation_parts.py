"""The pieces every operation of the OpenAPI document is built from.

Shared headers and credentials (the document's ``components``), responses in a dialect's
error envelope with the headers every answer carries, the common parameters and request
bodies, and :func:`build_operation`. Imports the dialect modules for their constants and
:mod:`trackd.gateway.openapi.schemas`; the path modules
(:mod:`trackd.gateway.openapi.dialect_paths`, :mod:`trackd.gateway.openapi.meta_paths`) import this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trackd.gateway.dialects import cueflow, databuddy, flywheel
from trackd.gateway.dialects.base import Dialect
from trackd.gateway.openapi import limits
from trackd.gateway.openapi.schemas import Schema, ref, string
from trackd.gateway.settings import GatewaySettings

# --- headers ------------------------------------------------------------------------------

HEADERS: dict[str, Schema] = {
    "X-Request-Id": {
        "description": "The request's id, on every response (the client's own "
                       "`X-Request-Id` when it sent one); it names the request in the logs.",
        "schema": {"type": "string"}},
    "Retry-After": {
        "description": "Seconds to wait before retrying.", "required": True,
        "schema": {"type": "integer", "minimum": 1}},
    "RateLimit-Policy": {
        "description": "The route's rate limit while one is on, e.g. `\"default\";q=100;w=60` "
                       "(100 requests per 60 s per key).",
        "schema": {"type": "string"}},
    "RateLimit": {
        "description": "What is left of the rate limit while one is on, e.g. "
                       "`\"default\";r=42;t=30` (42 requests, renewed in 30 s).",
        "schema": {"type": "string"}},
    "Trackd-Plan-Violations": {
        "description": "How many tracking plan violations the stored events had (the "
                       "project's plan in observe mode, or flagged unplanned events); absent "
                       "when there were none or the project has no plan. The body is the "
                       "dialect's as always. In block mode a violating event is refused "
                       "with the dialect's validation error instead (docs/tracking-plans.md).",
        "schema": {"type": "integer", "minimum": 1}},
    "Vary": {"description": "`Origin`: CORS answers depend on the page's origin.",
             "schema": {"type": "string"}},
    "Access-Control-Allow-Origin": {
        "description": "The page's origin, when the website allows it.",
        "schema": {"type": "string"}},
}
PREFLIGHT_HEADER_SCHEMAS: dict[str, Schema] = {
    name: {"required": True, "schema": {"const": value}}
    for name, value in databuddy.PREFLIGHT_HEADERS.items()
}


def header_ref(name: str) -> Schema:
    return {"$ref": f"#/components/headers/{name}"}


# On the answers of routes that store events.
PLAN_VIOLATIONS = {"Trackd-Plan-Violations": header_ref("Trackd-Plan-Violations")}


# --- credentials -------------------------------------------------------------------------

SECURITY_SCHEMES: dict[str, Schema] = {
    "bearer": {
        "type": "http", "scheme": "bearer",
        "description": "`Authorization: Bearer <key>`: a trackd API key (`trackd keys "
                       "create`); its scopes decide what it may do."},
    "flywheelKey": {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "Flywheel's: the API key itself, without a `Bearer ` prefix (a "
                       "prefixed key is refused with 401)."},
    "flywheelAuthType": {
        "type": "apiKey", "in": "header", "name": "Auth-Type",
        "description": f"Flywheel's: must be `{flywheel.AUTH_TYPE}`."},
    "apiKeyHeader": {
        "type": "apiKey", "in": "header", "name": "x-api-key",
        "description": "Databuddy's alternative to `Authorization: Bearer <key>`."},
    "websiteId": {
        "type": "apiKey", "in": "query", "name": "website_id",
        "description": "Databuddy's browser tracking: no key, the UUID of a website "
                       "(`trackd websites create`); a browser's `Origin` must be one of "
                       "the website's origins."},
}
BEARER: list[Schema] = [{"bearer": []}]

# --- responses ----------------------------------------------------------------------------

STATUS_TEXT = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    400: "Bad request: the body is not JSON, or fails validation",
    401: "Missing, malformed, revoked or unknown credentials",
    403: "The credentials may not do this",
    404: "Not found", 409: "A request with the same Idempotency-Key is in progress; retry",
    413: "Request body over the size limit (after decompression)",
    415: "The body's `Content-Encoding` is not one the gateway decodes (gzip, deflate)",
    422: "Validation failed (`field` names the offending field)",
    429: "Rate limited: retry after `Retry-After` seconds",
    500: "Internal error", 503: "Overloaded or the database is unavailable: retry after "
                                "`Retry-After` seconds",
}


def _json(schema: Schema, example: Any = None) -> Schema:
    content: Schema = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def response_for(status: int, schema: Schema | None, description: str = "",
              rate_limited: bool = True, example: Any = None,
              headers: Mapping[str, Schema] | None = None) -> Schema:
    all_headers: dict[str, Schema] = {"X-Request-Id": header_ref("X-Request-Id")}
    if rate_limited:
        all_headers["RateLimit-Policy"] = header_ref("RateLimit-Policy")
        all_headers["RateLimit"] = header_ref("RateLimit")
    if status in (429, 503):
        all_headers["Retry-After"] = header_ref("Retry-After")
    all_headers.update(headers or {})
    response: Schema = {"description": description or STATUS_TEXT[status],
                        "headers": all_headers}
    if schema is not None:
        response["content"] = _json(schema, example)
    return response


def error_responses(envelope: str, statuses: Iterable[int], *, overrides: Mapping[int, Schema] = {},
            descriptions: Mapping[int, str] = {},
            headers: Mapping[str, Schema] | None = None) -> dict[str, Schema]:
    return {str(status): response_for(status, overrides.get(status, ref(envelope)),
                                   descriptions.get(status, ""), headers=headers)
            for status in statuses}


# What every dialect route can answer with, beyond its own statuses.
COMMON_ERRORS = (400, 401, 403, 409, 413, 415, 429, 500, 503)


def flywheel_error(status: int) -> Schema:
    code = flywheel.ERROR_CODES.get(status)
    if code is None:
        return ref("FlywheelError")
    return {"allOf": [ref("FlywheelError")], "properties": {"code": {"const": code}}}


def cueflow_error(status: int) -> Schema:
    message = cueflow.FIXED_MESSAGES.get(status)
    if message is not None:
        return {"allOf": [ref("CueflowError")], "properties": {"error": {"const": message}}}
    title = cueflow.TITLES.get(status)
    if title is None:
        return ref("CueflowError")
    return {"allOf": [ref("CueflowError")],
            "properties": {"error": {"type": "string", "pattern": f"^{title}"}}}


def cueflow_error_responses(statuses: Iterable[int]) -> dict[str, Schema]:
    return {str(status): response_for(status, cueflow_error(status)) for status in statuses}


# --- parameters ---------------------------------------------------------------------------

IDEMPOTENCY_KEY: Schema = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Any 1-255 printable characters (a UUID is usual). Per project and route, "
                   "for 24 hours: the same key with the same body replays the first answer "
                   "and stores nothing again; with another body it is a 422 "
                   "`idempotency_key_reuse`.",
    "schema": string(1, limits.MAX_IDEMPOTENCY_KEY_CHARS, pattern=r"^[ -~]+$"),
    "example": "7b6c7e9e-2c2d-4a8d-9d3a-4f3d2c1b0a99",
}
# A contact's id in a path: one segment (an id holding '/' cannot be addressed).
CONTACT_ID: Schema = {
    "name": "externalId", "in": "path", "required": True,
    "schema": string(1, limits.MAX_ID_CHARS, pattern=r"^(?!\.\.?$)[^/?#]+$"),
    "example": "user-123",
}


def request_body(schema: Schema, examples: Mapping[str, Any] | None = None,
          *, text_plain: bool = False) -> Schema:
    content: Schema = {"application/json": {"schema": schema}}
    if examples:
        content["application/json"]["examples"] = {
            name: {"value": value} for name, value in examples.items()}
    body: Schema = {"required": True, "content": content}
    if text_plain:
        # Not a media type of its own: its schema could only say "a string", and most
        # strings are not the JSON the service reads (a client would learn it by trial).
        body["description"] = ("Also accepted as `Content-Type: text/plain` holding the "
                               "same JSON, as `navigator.sendBeacon` sends it.")
    return body


def rate_limit_note(dialect: Dialect, settings: GatewaySettings) -> str:
    # The server counts the limits (per key and dialect); the gateway states the defaults.
    limit = limits.DEFAULT_RATE_LIMITS[dialect.name]
    setting = f"TRACKD_RATE_LIMIT_{dialect.name.upper()}"
    if limit is None:
        return f"No rate limit by default (`{setting}` sets one)."
    requests, seconds = limit
    return f"Rate limit by default: {requests} requests per {seconds:g} s per key (`{setting}`)."


def build_operation(tag: str, operation_id: str, summary: str, description: str,
               responses: Mapping[str, Schema], *, security: list[Schema] | None = None,
               body: Schema | None = None, parameters: list[Schema] | None = None) -> Schema:
    operation: Schema = {"tags": [tag], "operationId": operation_id, "summary": summary,
                         "description": description}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = dict(sorted(responses.items()))
    operation["security"] = BEARER if security is None else security
    return operation
