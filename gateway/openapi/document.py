"""The gateway's OpenAPI 3.1 document, built from the dialect modules' own constants.

Every REST route is one operation here: its body schema (with its limits, see
:mod:`gateway.openapi.schemas`), every status it can answer with the body of that
dialect's envelope, its headers and the credentials its dialect takes. The path shared
by VibeFollow and Cueflow, ``POST /api/v1/events``, is one operation with a ``oneOf``
body and both dialects' responses. ``tests/gateway/test_openapi.py`` fails when a route
the app serves is missing here, or this lists one the app does not serve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway import health
from gateway.dialects import cueflow, databuddy, flywheel, vibefollow
from gateway.dialects.base import Dialect
from gateway.openapi import limits, sdk_doors
from gateway.openapi.console_paths import console_paths
from gateway.openapi.schemas import Schema, component_schemas, ref, string
from gateway.settings import GatewaySettings

OPENAPI_VERSION = "3.1.0"
DOCUMENT_PATH = "/openapi.json"
DOCS_PATH = "/docs"

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


def _header(name: str) -> Schema:
    return {"$ref": f"#/components/headers/{name}"}


# On the answers of routes that store events.
PLAN_VIOLATIONS = {"Trackd-Plan-Violations": _header("Trackd-Plan-Violations")}


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


def _response(status: int, schema: Schema | None, description: str = "",
              rate_limited: bool = True, example: Any = None,
              headers: Mapping[str, Schema] | None = None) -> Schema:
    all_headers: dict[str, Schema] = {"X-Request-Id": _header("X-Request-Id")}
    if rate_limited:
        all_headers["RateLimit-Policy"] = _header("RateLimit-Policy")
        all_headers["RateLimit"] = _header("RateLimit")
    if status in (429, 503):
        all_headers["Retry-After"] = _header("Retry-After")
    all_headers.update(headers or {})
    response: Schema = {"description": description or STATUS_TEXT[status],
                        "headers": all_headers}
    if schema is not None:
        response["content"] = _json(schema, example)
    return response


def _errors(envelope: str, statuses: Iterable[int], *, overrides: Mapping[int, Schema] = {},
            descriptions: Mapping[int, str] = {},
            headers: Mapping[str, Schema] | None = None) -> dict[str, Schema]:
    return {str(status): _response(status, overrides.get(status, ref(envelope)),
                                   descriptions.get(status, ""), headers=headers)
            for status in statuses}


# What every dialect route can answer with, beyond its own statuses.
COMMON_ERRORS = (400, 401, 403, 409, 413, 415, 429, 500, 503)


def _flywheel_error(status: int) -> Schema:
    code = flywheel.ERROR_CODES.get(status)
    if code is None:
        return ref("FlywheelError")
    return {"allOf": [ref("FlywheelError")], "properties": {"code": {"const": code}}}


def _cueflow_error(status: int) -> Schema:
    message = cueflow.FIXED_MESSAGES.get(status)
    if message is not None:
        return {"allOf": [ref("CueflowError")], "properties": {"error": {"const": message}}}
    title = cueflow.TITLES.get(status)
    if title is None:
        return ref("CueflowError")
    return {"allOf": [ref("CueflowError")],
            "properties": {"error": {"type": "string", "pattern": f"^{title}"}}}


def _cueflow_errors(statuses: Iterable[int]) -> dict[str, Schema]:
    return {str(status): _response(status, _cueflow_error(status)) for status in statuses}


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


def _body(schema: Schema, examples: Mapping[str, Any] | None = None,
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


def _rate_limit_note(dialect: Dialect, settings: GatewaySettings) -> str:
    # The server counts the limits (per key and dialect); the gateway states the defaults.
    limit = limits.DEFAULT_RATE_LIMITS[dialect.name]
    setting = f"TRACKD_RATE_LIMIT_{dialect.name.upper()}"
    if limit is None:
        return f"No rate limit by default (`{setting}` sets one)."
    requests, seconds = limit
    return f"Rate limit by default: {requests} requests per {seconds:g} s per key (`{setting}`)."


def _operation(tag: str, operation_id: str, summary: str, description: str,
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


# --- the dialects' operations --------------------------------------------------------------

VIBEFOLLOW_SEED_EVENT = {"external_user_id": "usr_42", "name": "user_signed_up",
                         "properties": {"plan": "trial", "source": "organic"}}
CUEFLOW_SEED_EVENT = {"externalId": "user-123", "eventKey": "purchase_completed",
                      "properties": {"amount": 99.99, "currency": "USD", "plan": "pro",
                                     "method": "credit_card"}}


def _vibefollow_errors(statuses: Iterable[int] = (*COMMON_ERRORS, 422)) -> dict[str, Schema]:
    return _errors("VibeFollowError", statuses)


def _vibefollow_paths(settings: GatewaySettings) -> dict[str, Schema]:
    note = _rate_limit_note(vibefollow.VIBEFOLLOW, settings)
    accepted = {"202": _response(202, ref("VibeFollowAccepted"), example=vibefollow.ACCEPTED,
                                 headers=PLAN_VIOLATIONS)}
    batch_example = {"events": [
        {"external_user_id": "usr_42", "name": "user_signed_up",
         "properties": {"plan": "trial"}},
        {"external_user_id": "usr_42", "name": "trial_started",
         "properties": {"trialDays": 14}}]}
    return {
        "/api/v1/events/batch": {"post": _operation(
            "VibeFollow", "vibefollowBatchTrack", "Track a batch of events",
            f"1 to {limits.MAX_BATCH_EVENTS} events, all or nothing: one invalid event "
            "rejects the batch with 422 naming it (`events[3].external_user_id`). " + note,
            {**accepted, **_vibefollow_errors()},
            body=_body(ref("VibeFollowBatch"), {"seed": batch_example}),
            parameters=[IDEMPOTENCY_KEY])},
        "/api/v1/users": {"post": _operation(
            "VibeFollow", "vibefollowUpsertUser", "Create or update a user",
            "Upserts one user by `external_user_id` (scope `users:write`); events sent for "
            "the user before are already in its history. " + note,
            {**accepted, **_vibefollow_errors()},
            body=_body(ref("VibeFollowUser")), parameters=[IDEMPOTENCY_KEY])},
        "/api/v1/users/bulk": {"post": _operation(
            "VibeFollow", "vibefollowBulkUpsertUsers", "Create or update users in bulk",
            f"1 to {limits.MAX_BATCH_USERS} users (scope `users:write`); unlike the events "
            "batch the valid ones are stored and the invalid ones reported by index. " + note,
            {"200": _response(200, ref("VibeFollowBulkResult")), **_vibefollow_errors()},
            body=_body(ref("VibeFollowUsers"), {"readme": {"users": [
                {"external_user_id": "usr_42", "traits": {"plan": "pro"}},
                {"email": "nobody@example.com"}]}}),
            parameters=[IDEMPOTENCY_KEY])},
    }


def _shared_events_path(settings: GatewaySettings) -> dict[str, Schema]:
    both = {"oneOf": [ref("VibeFollowError"), ref("CueflowError")]}
    responses: dict[str, Schema] = {
        "201": _response(201, ref("CueflowTracked"), "Cueflow: the event, stored",
                         headers=PLAN_VIOLATIONS),
        "202": _response(202, ref("VibeFollowAccepted"), "VibeFollow: accepted and stored",
                         example=vibefollow.ACCEPTED, headers=PLAN_VIOLATIONS),
        "404": _response(404, _cueflow_error(404), "Cueflow: no such contact (nothing stored)"),
        "422": _response(422, ref("VibeFollowError"),
                         "VibeFollow: validation failed, or a body of neither shape"),
    }
    for status in COMMON_ERRORS:
        responses[str(status)] = _response(status, both, STATUS_TEXT[status] + " (in the "
                                           "envelope of the dialect the body belongs to)")
    return {"/api/v1/events": {"post": _operation(
        "VibeFollow", "trackEvent", "Track an event (VibeFollow or Cueflow)",
        "VibeFollow's and Cueflow's path: the body's keys say whose it is "
        "(`external_user_id`/`name`: VibeFollow, 202; `externalId`/`eventKey`: Cueflow, 201, "
        "for a contact that exists), and every answer, errors included, comes in that "
        "vendor's envelope; a body of neither shape gets VibeFollow's 422. "
        f"VibeFollow: {_rate_limit_note(vibefollow.VIBEFOLLOW, settings)} "
        f"Cueflow: {_rate_limit_note(cueflow.CUEFLOW, settings)} "
        "`Idempotency-Key` applies to VibeFollow events.",
        responses,
        body=_body({"oneOf": [ref("VibeFollowEvent"), ref("CueflowEvent")]},
                   {"vibefollow": VIBEFOLLOW_SEED_EVENT, "cueflow": CUEFLOW_SEED_EVENT}),
        parameters=[IDEMPOTENCY_KEY]) | {"tags": ["VibeFollow", "Cueflow"]}}}


def _flywheel_paths(settings: GatewaySettings) -> dict[str, Schema]:
    examples = {
        "user_signup": {"event": {"event": "user_signup", "user_id": "user123", "properties": {
            "source": "website", "plan": "premium", "utm_source": "google_ads",
            "utm_campaign": "summer2024"}}},
        "product_purchased": {"event": {
            "event": "product_purchased", "user_id": "user456",
            "timestamp": "2024-01-15T10:30:00Z", "properties": {
                "product_name": "Premium Plan", "price": 99.99, "currency": "USD",
                "payment_method": "credit_card", "order_id": "ord_123456"}}},
        "anonymous_event": {"event": {"event": "page_viewed", "anonymous_id": "anon_789",
                                      "properties": {"page": "/pricing",
                                                     "referrer": "https://google.com",
                                                     "device_type": "mobile"}}},
        "identify_user": {"event": {
            "event": "user_updated_profile", "user_id": "user456", "identify": True,
            "properties": {"email": "john.doe@company.com", "first_name": "John",
                           "last_name": "Doe", "phone": "+1-555-0123",
                           "company": "Tech Corp", "plan_type": "premium"}}},
    }
    responses = {"200": _response(200, ref("FlywheelSuccess"), example=flywheel.SUCCESS,
                                  headers=PLAN_VIOLATIONS),
                 **{str(s): _response(s, _flywheel_error(s)) for s in COMMON_ERRORS}}
    return {"/v1/events": {"post": _operation(
        "Flywheel", "flywheelTrackEvent", "Track a user event",
        "One event; without `user_id` it is anonymous (keyed by `anonymous_id`, generated "
        "when absent); a repeated `event_id` is stored once. With `identify: true` the "
        "profile is updated from the properties first (scope `users:write`). "
        + _rate_limit_note(flywheel.FLYWHEEL, settings),
        responses, security=[{"flywheelKey": [], "flywheelAuthType": []}],
        body=_body(ref("FlywheelBody"), examples))}}


def _databuddy_paths(settings: GatewaySettings) -> dict[str, Schema]:
    cors = {"Vary": _header("Vary"),
            "Access-Control-Allow-Origin": _header("Access-Control-Allow-Origin")}
    website_id: Schema = {
        "name": "website_id", "in": "query", "required": False,
        "schema": string(format="uuid"),
        "description": "A website's id, instead of a key (browser tracking).",
        "example": "550e8400-e29b-41d4-a716-446655440000"}
    # Sent empty, it is as if absent (a server-side call).
    origin: Schema = {"name": "Origin", "in": "header", "required": False,
                      "schema": string(pattern=r"^[!-~]*$"),
                      "example": "https://shop.example.com"}
    keyed: list[Schema] = [{"bearer": []}, {"apiKeyHeader": []}]
    note = _rate_limit_note(databuddy.DATABUDDY, settings)
    statuses = (*COMMON_ERRORS, 404)
    preflight_responses = {
        "204": _response(204, None, "The origin is one of the website's: the CORS headers",
                         headers={**cors, **PREFLIGHT_HEADER_SCHEMAS,
                                  "Access-Control-Allow-Origin": {
                                      "required": True, "schema": {"type": "string"}}}),
        **_errors("DatabuddyError", (403, 404, 429, 500, 503), headers=cors),
    }
    preflight_parameters = [website_id | {"required": True}, origin | {"required": True}]
    preflight = _operation(
        "Databuddy", "", "CORS preflight",
        "Answered only for a `website_id` whose origins include the page's `Origin`; "
        "else 403 `Origin not authorized`.",
        preflight_responses, security=[], parameters=preflight_parameters)
    return {
        "/track": {
            "post": _operation(
                "Databuddy", "databuddyTrack", "Track events",
                "One event or an array of them, all or nothing; `count` is the events "
                "newly stored (a repeated `eventId` is accepted, not counted). A key needs "
                "scope `track:events`; a `website_id` request from a browser must come from "
                "one of the website's origins. " + note,
                {"200": _response(200, ref("DatabuddyTracked"),
                                  headers={**cors, **PLAN_VIOLATIONS}),
                 **_errors("DatabuddyError", statuses, headers=cors)},
                security=[*keyed, {"websiteId": []}],
                body=_body(ref("DatabuddyTrack"), {
                    "single_event": {
                        "name": "button_clicked", "namespace": "ui",
                        "properties": {"button_id": "signup", "page": "/pricing"},
                        "anonymousId": "user-123", "sessionId": "session-456"},
                    "multiple_events": [
                        {"name": "page_viewed", "properties": {"path": "/dashboard"}},
                        {"name": "feature_used", "namespace": "product",
                         "properties": {"feature": "export", "format": "csv"}}],
                    "with_website_id": {"name": "video_played", "properties": {
                        "video_id": "intro-2024", "duration": 120}},
                }, text_plain=True),
                parameters=[website_id, origin]),
            "options": preflight | {"operationId": "databuddyTrackPreflight"},
        },
        "/identify": {
            "post": _operation(
                "Databuddy", "databuddyIdentify", "Identify a profile",
                "Upserts the profile with its traits and links the anonymous id to it, so "
                "that id's past and future events are the profile's. Needs a key with "
                "`track:events` for that website. " + note,
                {"200": _response(200, ref("DatabuddyIdentified"), headers=cors),
                 **_errors("DatabuddyError", statuses, headers=cors)},
                security=keyed, body=_body(ref("DatabuddyIdentify"), text_plain=True),
                parameters=[website_id, origin]),
            "options": preflight | {"operationId": "databuddyIdentifyPreflight"},
        },
    }


def _cueflow_paths(settings: GatewaySettings) -> dict[str, Schema]:
    note = _rate_limit_note(cueflow.CUEFLOW, settings)
    contact = ref("CueflowContact")
    create_example = {"externalId": "user-123", "email": "ada@example.com", "plan": "pro"}
    return {
        "/api/v1/contacts": {"post": _operation(
            "Cueflow", "cueflowUpsertContact", "Create or update a contact",
            "201 when created, 200 when it existed (scope `users:write`). " + note,
            {"200": _response(200, contact, "Updated"),
             "201": _response(201, contact, "Created"),
             **_cueflow_errors(COMMON_ERRORS)},
            body=_body(ref("CueflowNewContact"), {"seed": create_example}))},
        "/api/v1/contacts/{externalId}": {
            "parameters": [CONTACT_ID],
            "get": _operation(
                "Cueflow", "cueflowGetContact", "Get a contact",
                "Scope `users:read`. " + note,
                {"200": _response(200, contact), **_cueflow_errors(
                    (400, 401, 403, 404, 429, 500, 503))}),
            "patch": _operation(
                "Cueflow", "cueflowUpdateContact", "Update a contact",
                "Changes the fields present; `null` or `\"\"` clears one (scope "
                "`users:write`). " + note,
                {"200": _response(200, contact),
                 **_cueflow_errors((*COMMON_ERRORS, 404))},
                body=_body(ref("CueflowContactChange"), {"plan": {"plan": "enterprise"}})),
            "delete": _operation(
                "Cueflow", "cueflowDeleteContact", "Delete a contact and its events",
                "By external id, else by email (`externalId` may be either). Scope "
                "`users:write`. " + note,
                {"200": _response(200, ref("CueflowDeleted")),
                 **_cueflow_errors((*COMMON_ERRORS, 404))}),
        },
        "/api/v1/audiences/evaluate": {"post": _operation(
            "Audiences", "evaluateAudience", "Evaluate an audience",
            "The contacts whose events and properties match, a page at a time (scope "
            "`users:read`). " + note,
            {"200": _response(200, ref("AudiencePage")),
             **_cueflow_errors(COMMON_ERRORS)},
            body=_body(ref("AudienceEvaluate"), {"seed": {
                "groups": [{"rules": [
                    {"event": "advanced_export_viewed", "op": "has_done"},
                    {"event": "advanced_export_used", "op": "has_not_done"}]}],
                "limit": 100}}))},
        "/api/v1/contacts/{externalId}/match": {
            "parameters": [CONTACT_ID],
            "post": _operation(
                "Audiences", "matchContact", "Whether a contact is in an audience",
                "Scope `users:read`. " + note,
                {"200": _response(200, ref("AudienceMatch")),
                 **_cueflow_errors((*COMMON_ERRORS, 404))},
                body=_body(ref("Audience"), {"readme": {"groups": [
                    {"rules": [{"event": "purchase_completed", "op": "count_greater_than",
                                "count": 2},
                               {"property": "plan", "op": "equals", "value": "pro"}]},
                    {"rules": [{"event": "page_viewed", "op": "last_done_within",
                                "within": "7d"}]}]}}))},
    }


# The envelope of a path no dialect owns (gateway/errors_middleware.py's render_plain).
PLAIN_ERROR: Schema = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": string(), "message": string()}}}}


def _meta_paths() -> dict[str, Schema]:
    return {
        DOCUMENT_PATH: {"get": _operation(
            "Documentation", "getOpenApiDocument", "This document", "",
            {"200": _response(200, {"type": "object", "required": ["openapi"]},
                              rate_limited=False)},
            security=[])},
        DOCS_PATH: {"get": _operation(
            "Documentation", "getDocs", "This document, for people", "Swagger UI.",
            {"200": {"description": "An HTML page",
                     "headers": {"X-Request-Id": _header("X-Request-Id")},
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
            security=[])},
        "/": {"get": _operation(
            "Documentation", "getFrontDoor", "The front door",
            "A browser (whose `Accept` ranks `text/html` above JSON) gets a page linking "
            "`/console`, `/docs`, `/openapi.json` and `/metrics`; any other client the JSON "
            "404 of an unknown path.",
            {"200": {"description": "An HTML page",
                     "headers": {"X-Request-Id": _header("X-Request-Id")},
                     "content": {"text/html": {"schema": {"type": "string"}}}},
             "404": _response(404, PLAIN_ERROR, rate_limited=False)},
            security=[])},
        **_health_paths(),
    }


def _health_paths() -> dict[str, Schema]:
    check = {"type": "string", "enum": ["ok", "unreachable", "full", "unknown"]}
    readiness = {
        "type": "object", "required": ["status", "checks"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "checks": {"type": "object",
                       "required": ["grpc_server", *health.CHECKS],
                       "properties": dict.fromkeys(("grpc_server", *health.CHECKS), check)},
        }}
    return {
        "/healthz": {"get": _operation(
            "Operations", "getLiveness", "Liveness", "200 whenever the process can answer.",
            {"200": _response(200, {"type": "object", "required": ["status"],
                                    "properties": {"status": {"const": "ok"}}},
                              rate_limited=False)},
            security=[])},
        "/metrics": {"get": _operation(
            "Operations", "getMetrics", "Prometheus metrics",
            "The Prometheus text exposition format (docs/operating/metrics.md): requests by "
            "dialect, route and status, gRPC calls, events by outcome and source, the write "
            "pipeline, the database, the audience index, tracking plan violations and webhook "
            "delivery. No per-project, per-key or per-endpoint label.",
            {"200": {"description": "The metrics",
                     "headers": {"X-Request-Id": _header("X-Request-Id")},
                     "content": {"text/plain": {"schema": {"type": "string"}}}}},
            security=[])},
        "/readyz": {"get": _operation(
            "Operations", "getReadiness", "Readiness",
            "200 only when the gRPC server and the database answer and the write queue is "
            "below its bound; else 503 naming the failing check.",
            {"200": _response(200, readiness, rate_limited=False),
             "503": _response(503, readiness, rate_limited=False)},
            security=[])},
    }


def build_document(settings: GatewaySettings | None = None) -> dict[str, Any]:
    """The document for a gateway with ``settings`` (its body size and rate limits)."""
    settings = settings or GatewaySettings()
    paths = {**_shared_events_path(settings), **_vibefollow_paths(settings),
             **_flywheel_paths(settings), **_databuddy_paths(settings),
             **_cueflow_paths(settings), **sdk_doors.paths(settings), **_meta_paths(),
             **console_paths()}
    sdk_doors.share_track(paths)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "trackd REST gateway",
            "version": "1",
            "summary": "Four tracking vendors' JSON APIs (VibeFollow, Flywheel, Databuddy, "
                       "Cueflow) and audiences, over one store.",
            "description": (
                "A client written for one of these vendors works by changing only its base "
                "URL and key. Every error comes in the envelope of the vendor the route "
                f"belongs to. Every body is at most {settings.max_body_bytes} bytes after "
                "decompression (`TRACKD_MAX_BODY_BYTES`), else 413; `Content-Encoding: "
                "gzip` and `deflate` are accepted. Unknown body fields are ignored."),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {"name": "VibeFollow", "description": "`/api/v1`: events, batches, users."},
            {"name": "Flywheel", "description": "`POST /v1/events`."},
            {"name": "Databuddy", "description": "`/track`, `/identify`, browser tracking."},
            {"name": "Cueflow", "description": "Contacts and events."},
            *sdk_doors.TAGS,
            {"name": "Audiences", "description": "Targeting by what contacts did, "
                                                 "Cueflow-style."},
            {"name": "Documentation", "description": "This document."},
            {"name": "Console", "description": "The console page and the streams it reads "
                                               "(docs/console.md)."},
            {"name": "Operations", "description": "Health probes for load balancers and "
                                                   "orchestrators; no key needed."},
        ],
        "paths": paths,
        "components": {
            "schemas": {**component_schemas(), **sdk_doors.schemas()},
            "headers": HEADERS,
            "securitySchemes": {**SECURITY_SCHEMES, **sdk_doors.SECURITY_SCHEMES},
        },
    }
