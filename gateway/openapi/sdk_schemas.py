"""The JSON Schemas of the analytics SDKs' dialects (Segment and RudderStack, PostHog,
Amplitude, Mixpanel): their request bodies and answer envelopes, with the limits taken
from the dialect modules' constants. :mod:`gateway.openapi.sdk_doors` adds them to the
document's components.

Imports: the dialect modules (their constants), :mod:`gateway.openapi.schemas` and
:mod:`gateway.openapi.limits`.
"""

from __future__ import annotations

from gateway.dialects import amplitude, posthog, segment
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
