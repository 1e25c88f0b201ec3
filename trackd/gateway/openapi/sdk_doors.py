"""The OpenAPI operations of the analytics SDKs' dialects (Segment and RudderStack's
``/v1/*``, PostHog's capture routes, Amplitude's, Mixpanel's; their schemas are
:mod:`trackd.gateway.openapi.sdk_schemas`'), which :mod:`trackd.gateway.openapi.document` merges
into the document, with their security schemes and tags.

Each operation has the shape of the document's others: every status its dialect answers
with, in that dialect's envelope, ``X-Request-Id`` on each, the rate-limit headers, and
``Retry-After`` on 429 and 503. Limits come from the dialect modules' constants.

Imports: the dialect modules (their constants), :mod:`trackd.gateway.openapi.schemas`,
:mod:`trackd.gateway.openapi.sdk_schemas` and :mod:`trackd.gateway.openapi.limits`; not
:mod:`trackd.gateway.openapi.document`, which imports this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trackd.gateway.dialects import amplitude, mixpanel, posthog, segment
from trackd.gateway.openapi import limits, sdk_schemas
from trackd.gateway.openapi.schemas import Schema, ref
from trackd.gateway.settings import GatewaySettings

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
        example = {key: value for key, value in SEGMENT_EXAMPLE.items()
                   if key not in ("type", "event", "properties") or kind == "track"}
        example |= {"group": {"groupId": "group-7"}, "alias": {"previousId": "anon-42"},
                    "page": {"name": "Home"}, "screen": {"name": "Home"}}.get(kind, {})
        paths[f"/v1/{kind}"] = {"post": {
            "tags": ["Segment"], "operationId": f"segment{kind.title()}",
            "summary": f"One {kind} call",
            "description": f"The same as a batch of one `{kind}` message. " + note,
            "requestBody": body(f"Segment{kind.title()}", example),
            "responses": responses, "security": security}}
    return paths


def _posthog_paths() -> dict[str, Schema]:
    note = _rate_limit_note(posthog.POSTHOG.name)
    responses = _responses(ref("PostHogSuccess"), "PostHogError", POSTHOG_ERRORS)
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
                       "`properties.token`). posthog-js's `?compression=gzip-js` says the "
                       "body is gzip without a `Content-Encoding` (a query parameter no "
                       "JSON Schema can tie to the body, so stated here only). " + note,
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


def schemas() -> dict[str, Schema]:
    """The SDK dialects' component schemas."""
    return sdk_schemas.schemas()


def paths(settings: GatewaySettings) -> dict[str, Schema]:
    """The operations of the SDK dialects' routes (``settings`` as the document's)."""
    del settings  # these limits are the dialects' own, not the settings'
    return {**_segment_paths(), **_posthog_paths(), **_amplitude_paths(),
            "/import": {"post": _mixpanel_operation("/import", "Import events")},
            "/engage": {"post": _mixpanel_operation("/engage", "Update profiles")}}
