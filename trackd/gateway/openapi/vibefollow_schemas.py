"""VibeFollow's request bodies and answers in the OpenAPI document: events, batches and users,
with the canonical events' required properties.

The property rules are the server's (:mod:`trackd.gateway.openapi.limits`); the canonical events
and the error codes are :mod:`trackd.gateway.dialects.vibefollow`'s own.
"""

from __future__ import annotations

from trackd.gateway.dialects import vibefollow
from trackd.gateway.grpc_errors import STATUS_CODES
from trackd.gateway.openapi import limits
from trackd.gateway.openapi import schemas as blocks
from trackd.gateway.openapi.schemas import Schema, nullable, ref, string
from trackd.wire.keys import snake_case


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
            "traits": nullable(blocks.traits_object(
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
                "properties": blocks.event_properties(),
                "event_id": string(0, limits.MAX_ID_CHARS,
                                   description="An occurrence id: a repeat is stored once."),
                "timestamp": blocks.DATE_TIME | {"description": "When it happened; default: now."},
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


def schemas() -> dict[str, Schema]:
    return _vibefollow_schemas()
