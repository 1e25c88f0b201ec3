"""The building blocks of the OpenAPI document's JSON Schemas, and the limits they share.

Each dialect's request bodies and envelopes are built from these in its own module
(:mod:`trackd.gateway.openapi.vibefollow_schemas`, ``flywheel_schemas``, ``databuddy_schemas``,
``cueflow_schemas``); :mod:`trackd.gateway.openapi.document` gathers them.

Each limit is a schema constraint taken from the constant that enforces it: the dialect
modules' own (Databuddy's lengths, Flywheel's name pattern, the audience operators) are
imported from them; the server's come from :mod:`trackd.gateway.openapi.limits`, which a test
holds equal to ``trackd/server/validation.py``. JSON Schema 2020-12, as OpenAPI 3.1 uses it.

The dialect modules import the four constructors they use on nearly every line
(``Schema``, ``nullable``, ``ref``, ``string``) by name, and the rest as ``blocks``
(``blocks.DATE_TIME``, ``blocks.event_properties()``), as they read ``limits.MAX_...``.
"""

from __future__ import annotations

from typing import Any

from trackd.gateway.openapi import limits

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


def json_value() -> Schema:
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


def event_properties(description: str = EVENT_PROPERTIES_NOTE,
                     values: Schema | None = None) -> Schema:
    """An event's properties, or null: the server's key count and :data:`PROPERTY_KEY`."""
    return nullable(properties_object(limits.MAX_PROPERTY_KEYS, PROPERTY_KEY, description,
                                      values))


def traits_object(description: str) -> Schema:
    """A profile's traits (custom attributes): the server's key count and :data:`TRAIT_KEY`."""
    return properties_object(limits.MAX_TRAIT_KEYS, TRAIT_KEY, description)
