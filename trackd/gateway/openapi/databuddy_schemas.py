"""Databuddy's request bodies and answers in the OpenAPI document: track, identify and
browser tracking, with Databuddy's own lengths and timestamp range.

The lengths, property bounds and messages are :mod:`trackd.gateway.dialects.databuddy`'s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trackd.gateway.dialects import databuddy
from trackd.gateway.openapi import schemas as blocks
from trackd.gateway.openapi.schemas import Schema, nullable, ref, string

# Unix milliseconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
_FIRST_MS = int((datetime(1, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC))
                / timedelta(milliseconds=1))
_LAST_MS = int((datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
                - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


def _databuddy_schemas() -> dict[str, Schema]:
    future_hours = databuddy.DATABUDDY_MAX_FUTURE.total_seconds() / 3600
    return {
        "DatabuddyEvent": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": string(1, databuddy.DATABUDDY_MAX_NAME_CHARS),
                "namespace": nullable(string(0, databuddy.DATABUDDY_MAX_NAMESPACE_CHARS)),
                "timestamp": nullable({
                    "anyOf": [{"type": "number", "minimum": _FIRST_MS, "maximum": _LAST_MS},
                              blocks.DATE_TIME],
                    "description": "Unix milliseconds or ISO-8601 (UTC without an offset); at "
                                   f"most {future_hours:g} hours "
                                   "ahead; default: now."}),
                "properties": nullable(blocks.properties_object(
                    databuddy.DATABUDDY_MAX_PROPERTY_KEYS,
                    string(1, databuddy.DATABUDDY_MAX_PROPERTY_KEY_CHARS,
                           pattern=blocks.PROPERTY_KEY["pattern"]),
                    f"At most {databuddy.DATABUDDY_MAX_PROPERTY_KEYS} keys of at most "
                    f"{databuddy.DATABUDDY_MAX_PROPERTY_KEY_CHARS} characters, "
                    f"{databuddy.DATABUDDY_MAX_PROPERTIES_BYTES} bytes as JSON.")),
                "anonymousId": nullable(string(0, databuddy.DATABUDDY_MAX_ID_CHARS)),
                "sessionId": nullable(string(0, databuddy.DATABUDDY_MAX_ID_CHARS)),
                "websiteId": nullable(string(format="uuid")),
                "source": nullable(string(0, databuddy.DATABUDDY_MAX_SOURCE_CHARS)),
                "eventId": nullable(string(0, databuddy.DATABUDDY_MAX_ID_CHARS,
                                           description="A repeat is accepted, not counted.")),
                "profileId": nullable(string(0, databuddy.DATABUDDY_MAX_ID_CHARS,
                                             description="The identified user.")),
                "anonymizeVisitorIds": nullable({"anyOf": [{"type": "boolean"},
                                                           {"const": "auto"}],
                                                 "description": "Accepted and ignored."}),
            },
        },
        "DatabuddyTrack": {
            "oneOf": [ref("DatabuddyEvent"),
                      {"type": "array", "minItems": 1, "items": ref("DatabuddyEvent"),
                       "description": "All or nothing."}],
        },
        "DatabuddyIdentify": {
            "type": "object",
            "required": ["profileId", "websiteId"],
            "properties": {
                "profileId": string(1, databuddy.DATABUDDY_MAX_ID_CHARS),
                "anonymousId": nullable(string(0, databuddy.DATABUDDY_MAX_ID_CHARS)),
                "traits": nullable(blocks.traits_object("Profile traits.")),
                "websiteId": string(format="uuid"),
            },
            "example": {"profileId": "user-123", "anonymousId": "anon-456",
                        "traits": {"plan": "pro"},
                        "websiteId": "550e8400-e29b-41d4-a716-446655440000"},
        },
        "DatabuddyTracked": {
            "type": "object", "required": ["status", "type", "count"],
            "properties": {"status": {"const": "success"}, "type": {"const": "custom_event"},
                           "count": {"type": "integer", "minimum": 0,
                                     "description": "Events newly stored."}},
            "example": {"status": "success", "type": "custom_event", "count": 1},
        },
        "DatabuddyIdentified": {
            "type": "object", "required": ["status", "type"],
            "properties": {"status": {"const": "success"}, "type": {"const": "identify"}},
            "example": {"status": "success", "type": "identify"},
        },
        "DatabuddyError": {
            "type": "object", "required": ["status", "message"],
            "properties": {"status": {"const": "error"},
                           "message": string(examples=sorted(
                               {*databuddy.REASON_MESSAGES.values(),
                                *databuddy.STATUS_MESSAGES.values()}))},
            "example": {"status": "error", "message": databuddy.INVALID_BODY},
        },
    }


def schemas() -> dict[str, Schema]:
    return _databuddy_schemas()
