"""The JSON Schemas of the analytics SDKs' dialects (Segment and RudderStack, PostHog,
Amplitude, Mixpanel): their request bodies and answer envelopes, with the limits taken
from the dialect modules' constants. :mod:`trackd.gateway.openapi.sdk_doors` adds them to the
document's components.

Imports: the dialect modules (their constants), :mod:`trackd.gateway.openapi.schemas` and
:mod:`trackd.gateway.openapi.limits`.
"""

from __future__ import annotations

from trackd.gateway.dialects import amplitude, posthog, segment
from trackd.gateway.openapi import limits
from trackd.gateway.openapi import schemas as blocks
from trackd.gateway.openapi.schemas import Schema, nullable, ref, string
from trackd.wire.limits import TIMESTAMP_MAX_SECONDS, TIMESTAMP_MIN_SECONDS

# Amplitude's times: Unix milliseconds within the years 1-9999, as the dialect checks.
FIRST_MS = TIMESTAMP_MIN_SECONDS * 1000
LAST_MS = TIMESTAMP_MAX_SECONDS * 1000


def _segment_schemas() -> dict[str, Schema]:
    identifier = nullable(string(1, segment.SEGMENT_MAX_ID_CHARS))
    free_object = nullable({"type": "object"})
    common: Schema = {
        "messageId": identifier | {"description": "The event id: a resent message is "
                                                  "stored once."},
        "userId": identifier, "anonymousId": identifier,
        "timestamp": nullable(blocks.DATE_TIME), "originalTimestamp": nullable(blocks.DATE_TIME),
        "sentAt": nullable(blocks.DATE_TIME),
        "context": free_object, "integrations": free_object, "_metadata": free_object,
        "channel": nullable({"type": "string"}),
        "writeKey": nullable({"type": "string"}),
    }
    properties: Schema = {"properties": blocks.event_properties()}
    traits = nullable(blocks.traits_object("Profile traits."))
    named = {"name": nullable({"type": "string"}), "category": nullable({"type": "string"})}
    given = {"type": "string", "minLength": 1, "maxLength": segment.SEGMENT_MAX_ID_CHARS}
    # What each call adds to the common fields, and which of its fields it requires.
    kinds: dict[str, tuple[Schema, list[str]]] = {
        "track": ({**properties, "event": string(1, limits.MAX_NAME_CHARS)}, ["event"]),
        "page": ({**properties, **named}, []), "screen": ({**properties, **named}, []),
        "identify": ({"traits": traits}, []),
        # A group's traits are kept one level down (under `group`), as any property.
        "group": ({"traits": nullable({
            "type": "object", "propertyNames": blocks.PROPERTY_KEY,
            "additionalProperties": ref(blocks.JSON_VALUE_NAME)}), "groupId": given}, ["groupId"]),
        "alias": ({"userId": given, "previousId": given}, ["userId", "previousId"]),
    }
    user_or_anonymous: Schema = {"anyOf": [
        {"required": ["userId"], "properties": {"userId": given}},
        {"required": ["anonymousId"], "properties": {"anonymousId": given}}]}
    schemas: dict[str, Schema] = {}
    for kind, (fields, required) in kinds.items():
        name = f"Segment{kind.title()}"
        message: Schema = {
            "type": "object", "required": required, "properties": {**common, **fields},
            "description": f"One {kind} call"
                           + ("" if kind == "alias" else "; `userId` or `anonymousId` is "
                              "required")
                           + ". Other fields are accepted and not kept."}
        if kind != "alias":
            message |= user_or_anonymous
        schemas[name] = message
        schemas[f"{name}Item"] = {"allOf": [ref(name), {
            "type": "object", "required": ["type"], "properties": {"type": {"const": kind}}}]}
    return {
        **schemas,
        "SegmentBatch": {
            "type": "object", "required": ["batch"],
            "properties": {
                "batch": {"type": "array", "items": {"oneOf": [
                    ref(f"Segment{kind.title()}Item") for kind in kinds]}},
                "sentAt": nullable(blocks.DATE_TIME), "context": free_object,
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
    given = string(1, posthog.POSTHOG_MAX_ID_CHARS)
    # Person properties; those named with '$' are PostHog's own ($initial_referrer, ...).
    person = nullable({"type": "object", "additionalProperties": ref(blocks.JSON_VALUE_NAME),
                       "propertyNames": {"anyOf": [{"type": "string", "pattern": "^[$]"},
                                                   blocks.TRAIT_KEY]}})
    event: Schema = {
        "type": "object", "required": ["event"],
        "description": "One event. `distinct_id` (or `properties.distinct_id`) is "
                       "required. `$identify`, `$create_alias`, `$set` and `$set_once` "
                       "change the user and are not stored; top-level `$` properties are "
                       "PostHog's, kept apart from the event's properties.",
        "properties": {
            "event": string(1, limits.MAX_NAME_CHARS),
            "distinct_id": identifier, "uuid": identifier,
            "properties": nullable({
                "type": "object", "additionalProperties": ref(blocks.JSON_VALUE_NAME),
                "propertyNames": {"anyOf": [{"type": "string", "pattern": "^[$]"},
                                            blocks.PROPERTY_KEY]},
                "properties": {"$set": person, "$set_once": person},
                "description": "The event's properties; those starting with `$` are "
                               "PostHog's own (kept apart)."}),
            "timestamp": nullable(blocks.DATE_TIME), "api_key": nullable({"type": "string"}),
            "$set": person, "$set_once": person,
        },
        "anyOf": [
            {"required": ["distinct_id"], "properties": {"distinct_id": given}},
            {"required": ["properties"], "properties": {"properties": {
                "type": "object", "required": ["distinct_id"],
                "properties": {"distinct_id": given}}}}],
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
    # Without options.min_id_length (stated in prose: it changes this minimum).
    user_id = string(amplitude.AMPLITUDE_DEFAULT_MIN_ID_LENGTH, amplitude.AMPLITUDE_MAX_ID_CHARS)
    operations = (amplitude.SET, amplitude.SET_ONCE, amplitude.UNSET)
    traits: Schema = {"type": "object", "propertyNames": blocks.TRAIT_KEY,
                      "additionalProperties": ref(blocks.JSON_VALUE_NAME)}
    indices: Schema = {"type": "object", "additionalProperties": {
        "type": "array", "items": {"type": "integer", "minimum": 0}}}
    return {
        "AmplitudeEvent": {
            "type": "object", "required": ["event_type"],
            "description": "`user_id` or `device_id` is required (at least "
                           f"{amplitude.AMPLITUDE_DEFAULT_MIN_ID_LENGTH} characters unless "
                           "the body's `options.min_id_length` says otherwise: this "
                           "document states the default). Fields other than "
                           "these are kept as the event's client context.",
            "properties": {
                "event_type": string(1, limits.MAX_NAME_CHARS),
                "user_id": nullable(user_id), "device_id": nullable(user_id),
                "insert_id": identifier,
                "time": nullable({"type": "integer", "description": "Unix milliseconds",
                                  "minimum": FIRST_MS, "maximum": LAST_MS}),
                "event_properties": blocks.event_properties(),
                "user_properties": nullable({
                    "type": "object", "additionalProperties": ref(blocks.JSON_VALUE_NAME),
                    "propertyNames": {"anyOf": [{"enum": list(operations)}, blocks.TRAIT_KEY]},
                    "properties": dict.fromkeys(operations, traits),
                    "description": "Traits to set, or the operations `$set`, `$setOnce` "
                                   "and `$unset`."}),
            },
            "anyOf": [{"required": ["user_id"], "properties": {"user_id": user_id}},
                      {"required": ["device_id"], "properties": {"device_id": user_id}}]},
        "AmplitudeUpload": {
            "type": "object", "required": ["api_key", "events"],
            "properties": {
                "api_key": {"type": "string"},
                "events": {"type": "array", "minItems": 1,
                           "maxItems": amplitude.AMPLITUDE_MAX_EVENTS,
                           "items": ref("AmplitudeEvent")},
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
