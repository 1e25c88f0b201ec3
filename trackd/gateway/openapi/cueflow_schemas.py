"""Cueflow's request bodies and answers in the OpenAPI document: contacts, events and
audiences (their rules and operators come from :mod:`trackd.gateway.dialects.cueflow_audiences`).

A contact's field lengths are the server's (:mod:`trackd.gateway.openapi.limits`).
"""

from __future__ import annotations

from trackd.gateway.dialects import cueflow_audiences
from trackd.gateway.openapi import limits
from trackd.gateway.openapi import schemas as blocks
from trackd.gateway.openapi.schemas import Schema, nullable, ref, string


def _contact_fields() -> Schema:
    return {
        "externalId": string(1, limits.MAX_ID_CHARS),
        "name": nullable(string(0, limits.PROFILE_LIMITS["name"])),
        "phone": nullable(string(0, limits.MAX_PHONE_CHARS)),
        "avatarUrl": nullable(string(0, limits.PROFILE_LIMITS["avatar_url"])),
        "role": nullable(string(0, limits.PROFILE_LIMITS["role"])),
        "plan": nullable(string(0, limits.PROFILE_LIMITS["plan"])),
        "signedUpAt": blocks.DATE_TIME,
        "customAttributes": blocks.traits_object(
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
                "properties": blocks.event_properties(
                    "Flat: strings, numbers and booleans.", blocks.FLAT_VALUE),
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
                                              "additionalProperties": blocks.FLAT_VALUE},
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
            "since": blocks.DATE_TIME,
            "before": blocks.DATE_TIME | {"description": "After `since`."},
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
            "before": blocks.DATE_TIME,
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


def schemas() -> dict[str, Schema]:
    return {**_cueflow_schemas(), **_audience_schemas()}
