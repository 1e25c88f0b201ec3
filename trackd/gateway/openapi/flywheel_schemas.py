"""Flywheel's request bodies and answers in the OpenAPI document: events and identify.

The event name pattern and the error codes are :mod:`trackd.gateway.dialects.flywheel`'s.
"""

from __future__ import annotations

from trackd.gateway.dialects import flywheel
from trackd.gateway.openapi import limits
from trackd.gateway.openapi import schemas as blocks
from trackd.gateway.openapi.schemas import Schema, nullable, ref, string


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
                "timestamp": nullable(blocks.DATE_TIME | {
                    "description": "ISO-8601 with an offset; default: now."}),
                "event_id": nullable(string(0, limits.MAX_ID_CHARS)),
                "properties": blocks.event_properties(
                    f"Flat: {flywheel.FLAT_VALUE}. With `identify: true` the properties "
                    f"{profile} fill the profile (as strings).", blocks.FLAT_VALUE),
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


def schemas() -> dict[str, Schema]:
    return _flywheel_schemas()
