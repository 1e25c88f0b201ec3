"""The JSON Schemas of the OpenAPI document: every request body and response envelope.

Each limit is a schema constraint taken from the constant that enforces it: the dialect
modules' own (Databuddy's lengths, Flywheel's name pattern, the audience operators) are
imported from them; the server's come from :mod:`gateway.openapi.limits`, which a test
holds equal to ``server/validation.py``. JSON Schema 2020-12, as OpenAPI 3.1 uses it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.dialects import cueflow_audiences, databuddy, flywheel, vibefollow
from gateway.grpc_errors import STATUS_CODES
from gateway.openapi import limits
from trackd_wire.keys import snake_case

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or ``null`` (an explicit null is accepted wherever a field is optional)."""
    return {"anyOf": [schema, {"type": "null"}]}


def string(min_length: int = 0, max_length: int | None = None, **more: Any) -> Schema:
    schema: Schema = {"type": "string"}
    if min_length:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    schema.update(more)
    return schema


# Property keys the server refuses at any depth: empty, starting with '$', holding NUL.
PROPERTY_KEY = string(1, limits.MAX_PROPERTY_KEY_CHARS, pattern=r"^[^$\x00][^\x00]*$")
# Trait and custom-attribute keys: neither may hold '.' either.
TRAIT_KEY = string(1, limits.MAX_PROPERTY_KEY_CHARS, pattern=r"^[^$.\x00][^.\x00]*$")
DATE_TIME = string(format="date-time")
FLAT_VALUE: Schema = {"type": ["string", "number", "boolean"]}


# Any JSON value whose objects, at every depth, have keys the server accepts.
JSON_VALUE_NAME = "JsonValue"


def _json_value() -> Schema:
    return {
        "description": "Any JSON value; an object's keys, at every depth, are 1-"
                       f"{limits.MAX_PROPERTY_KEY_CHARS} characters, not starting with "
                       "'$', without NUL.",
        "type": ["null", "boolean", "number", "string", "array", "object"],
        "items": ref(JSON_VALUE_NAME),
        "propertyNames": PROPERTY_KEY,
        "additionalProperties": ref(JSON_VALUE_NAME),
        # A JSON number written without a fraction beyond ±2^53 loses digits as a double.
        "if": {"type": "integer"},
        "then": {"minimum": -(2**53), "maximum": 2**53},
    }


def properties_object(max_keys: int, key: Schema, description: str,
                      values: Schema | None = None) -> Schema:
    schema: Schema = {
        "type": "object", "maxProperties": max_keys, "propertyNames": key,
        "description": description,
    }
    schema["additionalProperties"] = ref(JSON_VALUE_NAME) if values is None else values
    return schema


EVENT_PROPERTIES_NOTE = (
    f"At most {limits.MAX_PROPERTY_KEYS} keys (of 1-{limits.MAX_PROPERTY_KEY_CHARS} "
    f"characters, not starting with '$'), {limits.MAX_PROPERTIES_BYTES} bytes as compact "
    f"JSON, nested at most {limits.MAX_PROPERTY_DEPTH} levels; integers within ±2^53.")


def _canonical_rules() -> list[Schema]:
    """VibeFollow's canonical events must carry their property (either spelling)."""
    rules: list[Schema] = []
    for name, prop in vibefollow.CANONICAL_REQUIRED_PROPERTIES.items():
        spellings = sorted({prop, snake_case(prop)})
        rules.append({
            "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
            "then": {
                "required": ["properties"],
                "properties": {"properties": {
                    "type": "object",
                    "anyOf": [{"required": [key], "properties": {key: {"not": {"type": "null"}}}}
                              for key in spellings],
                }},
            },
        })
    return rules


def _vibefollow_schemas() -> dict[str, Schema]:
    canonical = ", ".join(f"`{name}` needs `properties.{prop}`"
                          for name, prop in vibefollow.CANONICAL_REQUIRED_PROPERTIES.items())
    known_traits = ", ".join(f"`{key}`" for key in vibefollow.KNOWN_TRAITS)
    user: Schema = {
        "type": "object",
        "required": ["external_user_id"],
        "properties": {
            "external_user_id": string(1, limits.MAX_ID_CHARS),
            "email": {"anyOf": [string(1, limits.MAX_EMAIL_CHARS, pattern=limits.EMAIL_PATTERN),
                                {"const": ""}, {"type": "null"}],
                      "description": "An address; `\"\"` or `null`: none given."},
            "traits": nullable(properties_object(
                limits.MAX_TRAIT_KEYS, TRAIT_KEY,
                f"The trait keys {known_traits} (either spelling: `signupDate` or "
                "`signup_date`) are profile fields and must be strings (`signupDate` an "
                "ISO-8601 date or date-time); the others are free-form traits. A null "
                "trait removes it.")),
        },
        "example": {"external_user_id": "usr_42", "email": "ada@example.com",
                    "traits": {"name": "Ada", "plan": "trial", "signupDate": "2024-01-15",
                               "workspaceId": "ws_1"}},
    }
    return {
        "VibeFollowEvent": {
            "type": "object",
            "description": f"One event. Canonical events need a property: {canonical}.",
            "required": ["external_user_id", "name"],
            "properties": {
                "external_user_id": string(1, limits.MAX_ID_CHARS),
                "name": string(1, limits.MAX_NAME_CHARS),
                "properties": nullable(properties_object(
                    limits.MAX_PROPERTY_KEYS, PROPERTY_KEY, EVENT_PROPERTIES_NOTE)),
                "event_id": string(0, limits.MAX_ID_CHARS,
                                   description="An occurrence id: a repeat is stored once."),
                "timestamp": DATE_TIME | {"description": "When it happened; default: now."},
            },
            "allOf": _canonical_rules(),
            "example": {"external_user_id": "usr_42", "name": "user_signed_up",
                        "properties": {"plan": "trial", "source": "organic"}},
        },
        "VibeFollowBatch": {
            "type": "object",
            "required": ["events"],
            "properties": {"events": {"type": "array", "minItems": 1,
                                      "maxItems": limits.MAX_BATCH_EVENTS,
                                      "items": ref("VibeFollowEvent")}},
        },
        "VibeFollowUser": user,
        "VibeFollowUsers": {
            "type": "object",
            "required": ["users"],
            "properties": {"users": {
                "type": "array", "minItems": 1, "maxItems": limits.MAX_BATCH_USERS,
                # Any JSON per record: the request is accepted whatever a record holds.
                "items": {"description": "A `VibeFollowUser`. Each record is checked on its "
                                         "own: an invalid one (even one that is not an "
                                         "object) is reported by index in `errors`, the "
                                         "others are stored."},
                "description": "`VibeFollowUser` records."}},
        },
        "VibeFollowAccepted": {
            "type": "object", "required": ["data"],
            "properties": {"data": {"type": "object", "required": ["accepted"],
                                    "properties": {"accepted": {"const": True}}}},
            "example": vibefollow.ACCEPTED,
        },
        "VibeFollowBulkResult": {
            "type": "object", "required": ["data", "meta"],
            "description": "`accepted + rejected == meta.received`.",
            "properties": {
                "data": {"type": "object", "required": ["accepted", "rejected", "errors"],
                         "properties": {
                             "accepted": {"type": "integer", "minimum": 0},
                             "rejected": {"type": "integer", "minimum": 0},
                             "errors": {"type": "array", "items": {
                                 "type": "object", "required": ["index", "code", "message"],
                                 "properties": {
                                     "index": {"type": "integer", "minimum": 0},
                                     "code": string(pattern="^[a-z_]+$"),
                                     "message": string(),
                                     "field": string()}}}}},
                "meta": {"type": "object", "required": ["received"],
                         "properties": {"received": {"type": "integer", "minimum": 0}}},
            },
            "example": {"data": {"accepted": 1, "rejected": 1, "errors": [
                {"index": 1, "code": "validation_failed",
                 "message": "external_user_id is required", "field": "external_user_id"}]},
                "meta": {"received": 2}},
        },
        "VibeFollowError": {
            "type": "object", "required": ["errors"],
            "properties": {"errors": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["code", "message"],
                "properties": {
                    "code": string(pattern="^[a-z_]+$", examples=sorted(
                        {*STATUS_CODES.values(), "idempotency_key_reuse"})),
                    "message": string(),
                    "field": string(description="The offending field; in a batch indexed: "
                                                "`events[3].external_user_id`."),
                }}}},
            "example": {"errors": [{"code": "validation_failed",
                                    "message": "events[3].external_user_id is required",
                                    "field": "events[3].external_user_id"}]},
        },
    }


def _flywheel_identify() -> Schema:
    """What ``identify: true`` needs: a user id, and profile properties the server takes
    (strings, surrounding spaces ignored; a phone may be an integer)."""
    space = limits.SPACE
    email = string(0, limits.MAX_EMAIL_CHARS,
                   pattern=rf"^[{space}]*(?:[^@{space}]+@[^@{space}]+)?[{space}]*$")
    # An integer's bound (its digits, at most MAX_PHONE_CHARS) is past what JSON numbers
    # carry exactly, so it is only described.
    phone = {"anyOf": [string(0, limits.MAX_PHONE_CHARS),
                       {"type": "integer", "description": f"At most {limits.MAX_PHONE_CHARS} "
                                                          "digits."}]}
    fields: Schema = {}
    for prop, field in flywheel.PROFILE_PROPERTIES.items():
        if field in ("email", "emails"):
            fields[prop] = email
        elif field in ("phone", "phones"):
            fields[prop] = phone
        else:
            fields[prop] = string(0, limits.PROFILE_LIMITS[field])
    return {"required": ["user_id"],
            "properties": {"user_id": string(1, limits.MAX_ID_CHARS),
                           "properties": nullable({"type": "object", "properties": fields})}}


def _flywheel_schemas() -> dict[str, Schema]:
    profile = ", ".join(f"`{key}`" for key in flywheel.PROFILE_PROPERTIES)
    return {
        "FlywheelEvent": {
            "type": "object",
            "required": ["event"],
            "properties": {
                "event": string(1, limits.MAX_NAME_CHARS,
                                pattern=flywheel.NAME_PATTERN.pattern,
                                description="The event's name.", example="user_signup"),
                "user_id": nullable(string(0, limits.MAX_ID_CHARS)),
                "anonymous_id": nullable(string(0, limits.MAX_ID_CHARS)),
                "timestamp": nullable(DATE_TIME | {
                    "description": "ISO-8601 with an offset; default: now."}),
                "event_id": nullable(string(0, limits.MAX_ID_CHARS)),
                "properties": nullable(properties_object(
                    limits.MAX_PROPERTY_KEYS, PROPERTY_KEY,
                    f"Flat: {flywheel.FLAT_VALUE}. With `identify: true` the properties "
                    f"{profile} fill the profile (as strings).", FLAT_VALUE)),
                "identify": nullable({"type": "boolean", "default": False}),
            },
            "allOf": [{"if": {"required": ["identify"],
                              "properties": {"identify": {"const": True}}},
                       "then": _flywheel_identify()}],
        },
        "FlywheelBody": {
            "type": "object", "required": ["event"],
            "properties": {"event": ref("FlywheelEvent")},
        },
        "FlywheelSuccess": {
            "type": "object", "required": ["success", "message"],
            "properties": {"success": {"const": True},
                           "message": {"const": flywheel.SUCCESS["message"]}},
            "example": flywheel.SUCCESS,
        },
        "FlywheelError": {
            "type": "object", "required": ["error", "code"],
            "properties": {"error": string(),
                           "code": string(pattern="^[A-Z_]+$",
                                          examples=sorted(flywheel.ERROR_CODES.values()))},
            "example": {"error": "Validation failed: event name is required",
                        "code": "VALIDATION_ERROR"},
        },
    }


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
                              DATE_TIME],
                    "description": "Unix milliseconds or ISO-8601 (UTC without an offset); at "
                                   f"most {future_hours:g} hours "
                                   "ahead; default: now."}),
                "properties": nullable(properties_object(
                    databuddy.DATABUDDY_MAX_PROPERTY_KEYS,
                    string(1, databuddy.DATABUDDY_MAX_PROPERTY_KEY_CHARS,
                           pattern=PROPERTY_KEY["pattern"]),
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
                "traits": nullable(properties_object(limits.MAX_TRAIT_KEYS, TRAIT_KEY,
                                                     "Profile traits.")),
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


def _contact_fields() -> Schema:
    return {
        "externalId": string(1, limits.MAX_ID_CHARS),
        "name": nullable(string(0, limits.PROFILE_LIMITS["name"])),
        "phone": nullable(string(0, limits.MAX_PHONE_CHARS)),
        "avatarUrl": nullable(string(0, limits.PROFILE_LIMITS["avatar_url"])),
        "role": nullable(string(0, limits.PROFILE_LIMITS["role"])),
        "plan": nullable(string(0, limits.PROFILE_LIMITS["plan"])),
        "signedUpAt": DATE_TIME,
        "customAttributes": properties_object(
            limits.MAX_TRAIT_KEYS, TRAIT_KEY,
            "Merged key by key; a null attribute is removed."),
        "email": string(1, limits.MAX_EMAIL_CHARS, pattern=limits.EMAIL_PATTERN),
    }


def _cueflow_schemas() -> dict[str, Schema]:
    nullable_string = {"type": ["string", "null"]}
    stamp = {"type": "string", "format": "date-time"}
    return {
        "CueflowEvent": {
            "type": "object",
            "required": ["externalId", "eventKey"],
            "properties": {
                "externalId": string(1, limits.MAX_ID_CHARS),
                "eventKey": string(1, limits.MAX_NAME_CHARS),
                "properties": nullable(properties_object(
                    limits.MAX_PROPERTY_KEYS, PROPERTY_KEY,
                    "Flat: strings, numbers and booleans.", FLAT_VALUE)),
            },
        },
        "CueflowNewContact": {
            "type": "object", "required": ["email"], "properties": _contact_fields(),
            "description": "`externalId` defaults to `email`; an absent field stays as it is, "
                           "`null` or `\"\"` clears it.",
        },
        "CueflowContactChange": {
            "type": "object",
            # The path names the contact; a body's externalId may only repeat it, which a
            # schema cannot say, so the document leaves it out.
            "properties": _contact_fields() | {"externalId": False},
            "description": "The fields to change; `externalId` cannot be changed (the path "
                           "names the contact).",
        },
        "CueflowContact": {
            "type": "object", "required": ["data"],
            "properties": {"data": {
                "type": "object",
                "required": ["externalId", "email", "name", "phone", "avatarUrl", "role",
                             "plan", "signedUpAt", "customAttributes", "createdAt",
                             "updatedAt"],
                "additionalProperties": False,
                "properties": {
                    "externalId": string(), "email": nullable_string,
                    "name": nullable_string, "phone": nullable_string,
                    "avatarUrl": nullable_string, "role": nullable_string,
                    "plan": nullable_string,
                    "signedUpAt": {"anyOf": [stamp, {"type": "null"}]},
                    "customAttributes": {"type": "object"},
                    "createdAt": stamp, "updatedAt": stamp,
                }}},
            "example": {"data": {
                "externalId": "user-123", "email": "ada@example.com", "name": None,
                "phone": None, "avatarUrl": None, "role": None, "plan": "pro",
                "signedUpAt": None, "customAttributes": {},
                "createdAt": "2024-01-15T10:30:00.000Z",
                "updatedAt": "2024-01-15T10:30:00.000Z"}},
        },
        "CueflowDeleted": {
            "type": "object", "required": ["data"],
            "properties": {"data": {
                "type": "object", "required": ["deleted", "externalId", "deletedEvents"],
                "properties": {"deleted": {"const": True}, "externalId": string(),
                               "deletedEvents": {"type": "integer", "minimum": 0}}}},
            "example": {"data": {"deleted": True, "externalId": "user-123",
                                 "deletedEvents": 4}},
        },
        "CueflowTracked": {
            "type": "object", "required": ["data"],
            "properties": {"data": {
                "type": "object",
                "required": ["id", "externalId", "eventKey", "properties", "timestamp"],
                "properties": {"id": string(), "externalId": string(), "eventKey": string(),
                               "properties": {"type": "object",
                                              "additionalProperties": FLAT_VALUE},
                               "timestamp": stamp}}},
            "example": {"data": {
                "id": "2f1e6a8c-55d1-4c1b-9a63-0e2d7c3b9f10", "externalId": "user-123",
                "eventKey": "purchase_completed",
                "properties": {"amount": 99.99, "currency": "USD", "plan": "pro",
                               "method": "credit_card"},
                "timestamp": "2024-01-15T10:30:00.000Z"}},
        },
        "CueflowError": {
            "type": "object", "required": ["error"],
            "properties": {"error": string()},
            "example": {"error": "Invalid request body: externalId is required"},
        },
    }


def _when_op(ops: tuple[str, ...], then: Schema) -> Schema:
    """``then`` applies to a rule whose ``op`` is one of ``ops``."""
    return {"if": {"required": ["op"], "properties": {"op": {"enum": list(ops)}}},
            "then": then}


def _audience_schemas() -> dict[str, Schema]:
    duration = string(1, pattern=cueflow_audiences._DURATION.pattern,
                      description="Weeks, days, hours, minutes, seconds: `7d`, `24h`, `1d12h`.")
    event_rule: Schema = {
        "type": "object", "required": ["event", "op"],
        "properties": {
            "property": False,  # a rule names an event or a property, not both
            "event": string(1, limits.MAX_NAME_CHARS),
            "op": {"enum": list(cueflow_audiences.EVENT_OPS)},
            "count": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1,
                      "description": "For `count_greater_than`."},
            "within": duration | {"description": "For `first_done_within` and "
                                                 "`last_done_within`."},
            "since": DATE_TIME, "before": DATE_TIME | {"description": "After `since`."},
        },
        "allOf": [_when_op(limits.AUDIENCE_WITHIN_EVENT_OPS, {"required": ["within"]})],
    }
    property_rule: Schema = {
        "type": "object", "required": ["property", "op"],
        "properties": {
            "event": False,
            "property": string(1,
                               description="A contact field or custom attribute "
                                           "(camelCase and snake_case are the same)."),
            "op": {"enum": list(cueflow_audiences.PROPERTY_OPS)},
            "value": {"description": "What to compare with (any JSON value)."},
            "within": duration | {"description": "For `date_within`."},
            "before": DATE_TIME,
        },
        "allOf": [
            _when_op(limits.AUDIENCE_VALUE_OPS, {
                "required": ["value"], "properties": {"value": {"not": {"type": "null"}}}}),
            _when_op(limits.AUDIENCE_NUMERIC_OPS, {"properties": {"value": {"type": "number"}}}),
            _when_op(("contains",), {"properties": {"value": {"not": {"type": "object"}}}}),
            _when_op(("date_within",), {"required": ["within"]}),
            _when_op(("date_before",), {"required": ["before"]}),
        ],
    }
    audience: Schema = {
        "type": "object", "required": ["groups"],
        "description": "Rules in a group are ANDed; groups are ORed.",
        "properties": {"groups": {
            "type": "array", "maxItems": limits.MAX_AUDIENCE_GROUPS,
            "items": {"type": "object", "required": ["rules"], "properties": {"rules": {
                "type": "array", "minItems": 1, "maxItems": limits.MAX_RULES_PER_GROUP,
                "items": ref("AudienceRule")}}}}},
        "example": {"groups": [{"rules": [
            {"event": "advanced_export_viewed", "op": "has_done"},
            {"event": "advanced_export_used", "op": "has_not_done"}]}]},
    }
    evaluate = {
        "allOf": [ref("Audience")],
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "maximum": cueflow_audiences.MAX_LIMIT,
                      "default": limits.DEFAULT_PAGE_SIZE},
            "cursor": nullable(string(description="`nextCursor` of the previous page.")),
        },
        "example": {"groups": audience["example"]["groups"], "limit": 100},
    }
    return {
        "AudienceEventRule": event_rule,
        "AudiencePropertyRule": property_rule,
        "AudienceRule": {"oneOf": [ref("AudienceEventRule"), ref("AudiencePropertyRule")]},
        "Audience": audience,
        "AudienceEvaluate": evaluate,
        "AudiencePage": {
            "type": "object", "required": ["data"],
            "properties": {"data": {
                "type": "object", "required": ["externalIds", "total", "nextCursor"],
                "properties": {"externalIds": {"type": "array", "items": string()},
                               "total": {"type": "integer", "minimum": 0},
                               "nextCursor": {"type": ["string", "null"]}}}},
            "example": {"data": {"externalIds": ["user-123"], "total": 1,
                                 "nextCursor": None}},
        },
        "AudienceMatch": {
            "type": "object", "required": ["data"],
            "properties": {"data": {
                "type": "object", "required": ["externalId", "matches"],
                "properties": {"externalId": string(), "matches": {"type": "boolean"}}}},
            "example": {"data": {"externalId": "user-123", "matches": False}},
        },
    }


def component_schemas() -> dict[str, Schema]:
    return {**_vibefollow_schemas(), **_flywheel_schemas(), **_databuddy_schemas(),
            **_cueflow_schemas(), **_audience_schemas(), JSON_VALUE_NAME: _json_value()}
