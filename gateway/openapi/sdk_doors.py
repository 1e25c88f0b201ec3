"""The OpenAPI operations and schemas of the analytics SDKs' dialects (Segment and
RudderStack's ``/v1/*``, PostHog's capture routes, Amplitude's, Mixpanel's), which
:mod:`gateway.openapi.document` merges into the document.

Each operation has the shape of the document's others: every status its dialect answers
with, in that dialect's envelope, ``X-Request-Id`` on each, the rate-limit headers, and
``Retry-After`` on 429 and 503. Limits come from the dialect modules' constants.

Imports: the dialect modules (their constants), :mod:`gateway.openapi.schemas` and
:mod:`gateway.openapi.limits`; not :mod:`gateway.openapi.document`, which imports this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.dialects import amplitude, mixpanel, posthog, segment
from gateway.openapi import limits
from gateway.openapi.schemas import (
    DATE_TIME,
    EVENT_PROPERTIES_NOTE,
    PROPERTY_KEY,
    Schema,
    nullable,
    properties_object,
    ref,
    string,
)
from gateway.settings import GatewaySettings

SECURITY_SCHEMES: dict[str, Schema] = {
    "segmentWriteKey": {
        "type": "http", "scheme": "basic",
        "description": "Segment's and RudderStack's: the write key (a trackd API key) as "
                       "the user name, no password, as their SDKs send it; without an "
                       "Authorization header, the body's `writeKey`."},
    "mixpanelSecret": {
        "type": "http", "scheme": "basic",
        "description": "Mixpanel's `/import`: the project's key (a trackd API key) as the "
                       "user name (`api_secret:`); without it, each event's "
                       "`properties.token`."},
}
TAGS: list[Schema] = [
    {"name": "Segment", "description": "Segment's HTTP tracking API (`/v1/batch` and the "
                                       "single calls), which RudderStack's SDKs use too."},
    {"name": "Amplitude", "description": "Amplitude's HTTP V2 (`/2/httpapi`) and Batch "
                                         "(`/batch`) APIs."},
    {"name": "Mixpanel", "description": "Mixpanel's `/track` (shared with Databuddy: a "
                                        "form body is Mixpanel's), `/import`, `/engage`."},
    {"name": "PostHog", "description": "PostHog's capture routes (`/batch/`, `/capture/`, "
                                       "`/e/`, `/i/v0/e/`)."},
]
POSTHOG_ERRORS = (400, 401, 403, 409, 413, 415, 429, 500, 503)
# Amplitude's SDK retries any 4xx but 400, 413 and 429: a key problem is a 400.
AMPLITUDE_ERRORS = (400, 409, 413, 415, 429, 500, 503)
MIXPANEL_ERRORS = (400, 401, 403, 409, 413, 415, 429, 500, 503)
# What a Segment-family route answers with besides 200.
SEGMENT_ERRORS = (400, 401, 403, 409, 413, 415, 429, 500, 503)
DESCRIPTIONS = {
    200: "Stored (events durably; user changes applied)",
    400: "The body is not JSON, or fails validation (`message` names the field)",
    401: "Missing, malformed, revoked or unknown write key",
    403: "The key may not do this",
    409: "A conflicting request is in progress; retry",
    413: f"Body over {segment.SEGMENT_MAX_BODY_BYTES} bytes (after decompression)",
    415: "The body's `Content-Encoding` is not gzip, deflate or identity",
    429: "Rate limited: retry after `Retry-After` seconds",
    500: "Internal error",
    503: "Overloaded or the database is unavailable: retry after `Retry-After` seconds",
}


def _response(status: int, schema: Schema) -> Schema:
    headers: dict[str, Schema] = {
        name: {"$ref": f"#/components/headers/{name}"}
        for name in ("X-Request-Id", "RateLimit-Policy", "RateLimit")}
    if status in (429, 503):
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    return {"description": DESCRIPTIONS[status], "headers": headers,
            "content": {"application/json": {"schema": schema}}}


def _responses(success: Schema, envelope: str, statuses: Iterable[int]) -> dict[str, Schema]:
    return {"200": _response(200, success),
            **{str(status): _response(status, ref(envelope)) for status in statuses}}


def _rate_limit_note(dialect: str) -> str:
    limit = limits.DEFAULT_RATE_LIMITS[dialect]
    setting = f"TRACKD_RATE_LIMIT_{dialect.upper()}"
    if limit is None:
        return f"No rate limit by default (`{setting}` sets one)."
    requests, seconds = limit
    return f"Rate limit by default: {requests} requests per {seconds:g} s per key (`{setting}`)."


def _segment_schemas() -> dict[str, Schema]:
    identifier = nullable(string(1, segment.SEGMENT_MAX_ID_CHARS))
    free_object = nullable({"type": "object"})
    message: Schema = {
        "type": "object",
        "description": "One call. `userId` or `anonymousId` is required (`userId` and "
                       "`previousId` for alias; `event` for track; `groupId` for group).",
        "properties": {
            "type": {"enum": list(segment.MESSAGE_TYPES),
                     "description": "Required in a batch; the route says it otherwise."},
            "messageId": identifier | {"description": "The event id: a resent message is "
                                                      "stored once."},
            "userId": identifier, "anonymousId": identifier,
            "event": nullable(string(1, limits.MAX_NAME_CHARS)),
            "name": nullable({"type": "string"}), "category": nullable({"type": "string"}),
            "properties": nullable(properties_object(
                limits.MAX_PROPERTY_KEYS, PROPERTY_KEY, EVENT_PROPERTIES_NOTE)),
            "traits": free_object, "groupId": identifier, "previousId": identifier,
            "timestamp": nullable(DATE_TIME), "originalTimestamp": nullable(DATE_TIME),
            "sentAt": nullable(DATE_TIME),
            "context": free_object, "integrations": free_object, "_metadata": free_object,
            "channel": nullable({"type": "string"}),
            "writeKey": nullable({"type": "string"}),
        },
    }
    return {
        "SegmentMessage": message,
        "SegmentBatch": {
            "type": "object", "required": ["batch"],
            "properties": {
                "batch": {"type": "array", "items": ref("SegmentMessage")},
                "sentAt": nullable(DATE_TIME), "context": free_object,
                "integrations": free_object, "writeKey": nullable({"type": "string"}),
            },
        },
        "SegmentSuccess": {"type": "object", "required": ["success"],
                           "properties": {"success": {"const": True}}},
        "SegmentError": {
            "type": "object", "required": ["success", "code", "message"],
            "properties": {"success": {"const": False}, "code": {"type": "string"},
                           "message": {"type": "string"}}},
    }


def _posthog_schemas() -> dict[str, Schema]:
    identifier = nullable(string(1, posthog.POSTHOG_MAX_ID_CHARS))
    event: Schema = {
        "type": "object", "required": ["event"],
        "description": "One event. `distinct_id` (or `properties.distinct_id`) is "
                       "required. `$identify`, `$create_alias`, `$set` and `$set_once` "
                       "change the user and are not stored; top-level `$` properties are "
                       "PostHog's, kept apart from the event's properties.",
        "properties": {
            "event": string(1, limits.MAX_NAME_CHARS),
            "distinct_id": identifier, "uuid": identifier,
            "properties": nullable({"type": "object"}),
            "timestamp": nullable(DATE_TIME), "api_key": nullable({"type": "string"}),
            "$set": nullable({"type": "object"}), "$set_once": nullable({"type": "object"}),
        },
    }
    return {
        "PostHogEvent": event,
        "PostHogCapture": {"oneOf": [
            {"type": "object", "required": ["batch"], "properties": {
                "batch": {"type": "array", "items": ref("PostHogEvent")},
                "api_key": nullable({"type": "string"}), "token": nullable({"type": "string"}),
                "sent_at": nullable({"type": "string"}),
                "historical_migration": nullable({"type": "boolean"})}},
            ref("PostHogEvent"),
            {"type": "array", "items": ref("PostHogEvent")},
        ]},
        "PostHogSuccess": {"type": "object", "required": ["status"],
                           "properties": {"status": {"const": 1}}},
        "PostHogError": {
            "type": "object", "required": ["type", "code", "detail", "attr"],
            "properties": {"type": {"type": "string"}, "code": {"type": "string"},
                           "detail": {"type": "string"},
                           "attr": {"type": ["string", "null"]}}},
    }


def _amplitude_schemas() -> dict[str, Schema]:
    identifier = nullable(string(1, amplitude.AMPLITUDE_MAX_ID_CHARS))
    indices: Schema = {"type": "object", "additionalProperties": {
        "type": "array", "items": {"type": "integer", "minimum": 0}}}
    return {
        "AmplitudeEvent": {
            "type": "object", "required": ["event_type"],
            "description": "`user_id` or `device_id` is required (at least "
                           f"{amplitude.AMPLITUDE_DEFAULT_MIN_ID_LENGTH} characters unless "
                           "`options.min_id_length` says otherwise). Fields other than "
                           "these are kept as the event's client context.",
            "properties": {
                "event_type": string(1, limits.MAX_NAME_CHARS),
                "user_id": identifier, "device_id": identifier, "insert_id": identifier,
                "time": nullable({"type": "integer", "description": "Unix milliseconds"}),
                "event_properties": nullable(properties_object(
                    limits.MAX_PROPERTY_KEYS, PROPERTY_KEY, EVENT_PROPERTIES_NOTE)),
                "user_properties": nullable({"type": "object"}),
            }},
        "AmplitudeUpload": {
            "type": "object", "required": ["api_key", "events"],
            "properties": {
                "api_key": {"type": "string"},
                "events": {"type": "array", "minItems": 1,
                           "maxItems": amplitude.AMPLITUDE_MAX_EVENTS,
                           "items": ref("AmplitudeEvent")},
                "options": nullable({"type": "object", "properties": {
                    "min_id_length": nullable({"type": "integer"})}}),
            }},
        "AmplitudeSuccess": {
            "type": "object",
            "required": ["code", "server_upload_time", "payload_size_bytes", "events_ingested"],
            "properties": {"code": {"const": 200}, "server_upload_time": {"type": "integer"},
                           "payload_size_bytes": {"type": "integer"},
                           "events_ingested": {"type": "integer"}}},
        "AmplitudeError": {
            "type": "object", "required": ["code", "error"],
            "properties": {
                "code": {"type": "integer"}, "error": {"type": "string"},
                "missing_field": {"type": "string"},
                "events_with_missing_fields": indices,
                "events_with_invalid_fields": indices,
                "events_with_invalid_id_lengths": indices,
                "throttled_events": {"type": "array", "items": {"type": "integer"}}}},
    }


def _mixpanel_schemas() -> dict[str, Schema]:
    return {
        "MixpanelForm": {
            "type": "object", "required": ["data"],
            "properties": {
                "data": {"type": "string", "description": "JSON (or base64 of JSON): one "
                         "event (profile update on /engage) or an array of them."},
                "verbose": {"enum": ["0", "1"], "description": "`1`: a JSON answer."},
                "ip": {"type": "string"}, "strict": {"type": "string"}}},
        "MixpanelSuccess": {"oneOf": [
            {"type": "object", "required": ["status", "error"],
             "properties": {"status": {"const": 1}, "error": {"type": "null"}}},
            {"const": 1}]},
        "MixpanelError": {"oneOf": [
            {"type": "object", "required": ["status", "error"],
             "properties": {"status": {"const": 0}, "error": {"type": "string"}}},
            {"const": 0}]},
    }


def schemas() -> dict[str, Schema]:
    return {**_segment_schemas(), **_posthog_schemas(), **_amplitude_schemas(),
            **_mixpanel_schemas()}


SEGMENT_EXAMPLE: Mapping[str, Any] = {
    "type": "track", "userId": "user-42", "event": "Signed Up",
    "properties": {"plan": "pro"}, "messageId": "0b5b1b0e-5a33-4a0f-8a42-0f1c9d4d6b77",
    "timestamp": "2026-01-01T12:00:00Z"}


def _segment_paths() -> dict[str, Schema]:
    note = _rate_limit_note(segment.SEGMENT.name)
    security: list[Schema] = [{"segmentWriteKey": []}, {"bearer": []}]
    responses = _responses(ref("SegmentSuccess"), "SegmentError", SEGMENT_ERRORS)

    def body(schema: str, example: Mapping[str, Any]) -> Schema:
        return {"required": True, "content": {"application/json": {
            "schema": ref(schema), "example": example}}}

    paths: dict[str, Schema] = {"/v1/batch": {"post": {
        "tags": ["Segment"], "operationId": "segmentBatch", "summary": "Send a batch",
        "description": "Any mix of calls. Events are stored all or nothing, up to "
                       f"{limits.MAX_BATCH_EVENTS} at a time (a larger batch is stored in "
                       "parts; resending it stores each event once). " + note,
        "requestBody": body("SegmentBatch", {"batch": [SEGMENT_EXAMPLE]}),
        "responses": responses, "security": security}}}
    for kind in segment.MESSAGE_TYPES:
        example = {key: value for key, value in SEGMENT_EXAMPLE.items() if key != "type"}
        paths[f"/v1/{kind}"] = {"post": {
            "tags": ["Segment"], "operationId": f"segment{kind.title()}",
            "summary": f"One {kind} call",
            "description": f"The same as a batch of one `{kind}` message. " + note,
            "requestBody": body("SegmentMessage", example),
            "responses": responses, "security": security}}
    return paths


def _posthog_paths() -> dict[str, Schema]:
    note = _rate_limit_note(posthog.POSTHOG.name)
    responses = _responses(ref("PostHogSuccess"), "PostHogError", POSTHOG_ERRORS)
    compression: Schema = {
        "name": "compression", "in": "query", "required": False,
        "schema": {"enum": ["gzip-js"]},
        "description": "posthog-js: the body is gzip without a `Content-Encoding`."}
    example = {"api_key": "trk_...", "batch": [{
        "event": "$pageview", "distinct_id": "user-42",
        "properties": {"$current_url": "https://example.com/", "plan": "pro"},
        "uuid": "0190b2f2-7c4e-7a3b-9c1d-2e3f4a5b6c7d", "timestamp": "2026-01-01T12:00:00Z"}]}
    return {path: {"post": {
        "tags": ["PostHog"], "operationId": "posthog" + "".join(
            part.title() for part in path.strip("/").split("/")),
        "summary": "Capture events",
        "description": "A batch, one event, or an array of events; the project API key "
                       "in the body (`api_key`, else an event's `api_key` or "
                       "`properties.token`). " + note,
        "parameters": [compression],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": ref("PostHogCapture"), "example": example}}},
        # The key is in the body, where OpenAPI's security schemes cannot point.
        "responses": responses, "security": []}} for path in posthog.ROUTES}


def _amplitude_paths() -> dict[str, Schema]:
    note = _rate_limit_note(amplitude.AMPLITUDE.name)
    responses = _responses(ref("AmplitudeSuccess"), "AmplitudeError", AMPLITUDE_ERRORS)
    responses["400"]["description"] = (
        "Not JSON, invalid (the `events_with_*` fields name the events), or `Invalid API "
        "key: ...` (missing, unknown, revoked, or may not track): final for the SDK")
    example = {"api_key": "trk_...", "events": [{
        "event_type": "signed up", "user_id": "user-42", "device_id": "device-42",
        "insert_id": "0b5b1b0e-5a33", "time": 1767225600000,
        "event_properties": {"plan": "pro"}}]}
    operations = {"/2/httpapi": ("amplitudeHttpApi", "HTTP V2 API"),
                  "/batch": ("amplitudeBatch", "Batch API")}
    return {path: {"post": {
        "tags": ["Amplitude"], "operationId": operation_id, "summary": summary,
        "description": f"At most {amplitude.AMPLITUDE_MAX_BODY_BYTES[path]} bytes and "
                       f"{amplitude.AMPLITUDE_MAX_EVENTS} events; stored all or nothing "
                       "(500 at a time). The API key is the body's `api_key`. " + note,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": ref("AmplitudeUpload"), "example": example}}},
        # The key is in the body, where OpenAPI's security schemes cannot point.
        "responses": responses, "security": []}}
        for path, (operation_id, summary) in operations.items()}


def _mixpanel_operation(path: str, summary: str) -> Schema:
    note = _rate_limit_note(mixpanel.MIXPANEL.name)
    key = {"/track": "each event's `properties.token`",
           "/engage": "each update's `$token`",
           "/import": "the Basic user name (`api_secret:`), else `properties.token`"}[path]
    return {
        "tags": ["Mixpanel"], "operationId": "mixpanel" + path.strip("/").title(),
        "summary": summary,
        "description": f"A form `data=<json>`, at most {mixpanel.MIXPANEL_MAX_MESSAGES[path]} "
                       f"messages; the project token is {key}. " + note,
        "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": ref("MixpanelForm")}}},
        "responses": _responses(ref("MixpanelSuccess"), "MixpanelError", MIXPANEL_ERRORS),
        "security": [{"mixpanelSecret": []}, {}] if path == "/import" else []}


def share_track(paths: dict[str, Schema]) -> None:
    """``POST /track`` is Databuddy's and Mixpanel's: add Mixpanel's form body, and its
    answers beside Databuddy's, to the Databuddy operation."""
    operation = paths["/track"]["post"]
    operation["tags"] = [*operation["tags"], "Mixpanel"]
    operation["description"] += (
        " A form body (`application/x-www-form-urlencoded`, `data=<json>`) is Mixpanel's "
        "(`properties.token` is its key), answered in Mixpanel's shapes.")
    operation["requestBody"]["content"]["application/x-www-form-urlencoded"] = {
        "schema": ref("MixpanelForm")}
    mixpanel_responses = _responses(ref("MixpanelSuccess"), "MixpanelError",
                                    MIXPANEL_ERRORS)
    for status, response in operation["responses"].items():
        extra = mixpanel_responses.get(status)
        content = response.get("content", {}).get("application/json")
        if extra is None or content is None:
            continue
        content["schema"] = {"anyOf": [content["schema"],
                                       extra["content"]["application/json"]["schema"]]}


def paths(settings: GatewaySettings) -> dict[str, Schema]:
    """The operations of the SDK dialects' routes (``settings`` as the document's)."""
    del settings  # these limits are the dialects' own, not the settings'
    return {**_segment_paths(), **_posthog_paths(), **_amplitude_paths(),
            "/import": {"post": _mixpanel_operation("/import", "Import events")},
            "/engage": {"post": _mixpanel_operation("/engage", "Update profiles")}}
