"""An event's properties and a user's traits, read into the plain values stored.

Properties arrive as a ``google.protobuf.Struct`` (``properties``) or as one JSON object
in bytes (``properties_json``, what the REST gateway sends: cheaper to encode, decode and
walk). Both go through the same rules with the same messages and field paths and give the
same stored document: :class:`StructProperties` walks a Struct (a user's traits too),
:class:`_PlainProperties` the orjson-decoded JSON (:func:`json_properties`), and both
store a number as a Struct's double would be (:func:`_number`), so a JSON ``3``, ``3.0``
and a Struct's ``3.0`` are all stored as the integer 3. Only what a Struct cannot hold is
the JSON's alone to refuse: bytes that are not one UTF-8 JSON object (:func:`json_object`,
which reads an event's client context too), and duplicate keys. The limits are
:mod:`trackd.wire.limits`'; :mod:`trackd.server.validation` applies the rest of an event's and a
user's rules.

May import: :mod:`trackd.server.errors`, :mod:`trackd.wire`, protobuf and orjson.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import orjson
from google.protobuf import struct_pb2

from trackd.server.errors import FieldViolation
from trackd.wire.limits import (
    MAX_PROPERTIES_BYTES,
    MAX_PROPERTY_DEPTH,
    MAX_PROPERTY_KEY_CHARS,
    MAX_PROPERTY_KEYS,
)

# Integral doubles in this range are exact, and are stored as integers.
_EXACT_INT = 2.0**53

KEY_RULE = "property keys must be non-empty, not start with '$' and not contain NUL"
DEPTH_RULE = f"properties may nest at most {MAX_PROPERTY_DEPTH} levels deep"
# What a JSON value is called in a message: a JSON field that is not an object.
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def valid_property_key(key: str) -> bool:
    """A key of an event's properties (at any depth): not empty, no leading ``$``, no NUL.

    Properties are stored as one whole subdocument, so a ``.`` in a key is just a
    character; a leading ``$`` reads as an operator to MongoDB, and NUL ends a BSON key.
    Nested trait keys follow this rule too."""
    return bool(key) and not key.startswith("$") and "\x00" not in key


def valid_trait_key(key: str) -> bool:
    """A top-level key of a user's traits: a property key that also holds no ``.``.

    Traits are set and unset key by key as ``traits.<key>`` (trackd/storage/users.py), where a
    ``.`` would address a nested field instead of naming one."""
    return valid_property_key(key) and "." not in key


def _join(parent: str, key: str | int) -> str:
    return f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}"


def _number(number: float, parent: str, key: str | int,
            violations: list[FieldViolation]) -> Any:
    """A number as stored: integral doubles within ±2^53 as integers (exact there)."""
    if not math.isfinite(number):
        violations.append(FieldViolation(_join(parent, key), "numbers must be finite"))
        return None
    if number.is_integer() and -_EXACT_INT <= number <= _EXACT_INT:
        return int(number)
    return number


V = TypeVar("V")


def _key_violation(key: str, path: str) -> FieldViolation | None:
    """Why ``key`` may not name a property of the object at ``path``; None if it may."""
    if not valid_property_key(key):
        return FieldViolation(f"{path}.{key}" if key else path, KEY_RULE)
    if len(key) > MAX_PROPERTY_KEY_CHARS:
        return FieldViolation(
            path, f"property key longer than {MAX_PROPERTY_KEY_CHARS} characters")
    return None


class _Walker(ABC, Generic[V]):
    """Properties to plain values, collecting violations instead of raising: the rules,
    messages, paths and depth counting both encodings share; subclasses read values."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = violations

    def entries(self, items: Iterable[tuple[str, V]], path: str, depth: int) -> dict[str, Any]:
        """The object at ``path`` (``depth`` levels down; properties are level 1)."""
        if depth > MAX_PROPERTY_DEPTH:
            self.violations.append(FieldViolation(path, DEPTH_RULE))
            return {}
        out: dict[str, Any] = {}
        for key, value in items:
            refused = _key_violation(key, path)
            if refused is not None:
                self.violations.append(refused)
                continue
            out[key] = self.value(value, path, key, depth)
        return out

    @abstractmethod
    def value(self, value: V, parent: str, key: str | int, depth: int) -> Any:
        """Plain ``value``, found at ``key`` of ``parent`` (``depth`` levels down)."""


class StructProperties(_Walker[struct_pb2.Value]):
    """A Struct's properties (or traits) as plain values."""

    def struct(self, struct: struct_pb2.Struct, path: str, depth: int) -> dict[str, Any]:
        return self.entries(struct.fields.items(), path, depth)

    def value(self, value: struct_pb2.Value, parent: str, key: str | int, depth: int) -> Any:
        """Plain ``value``, found at ``key`` of ``parent``. The path string is built only
        when needed (a violation, nesting): this runs for every property of every event."""
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            return value.string_value
        if kind == "number_value":
            return _number(value.number_value, parent, key, self.violations)
        if kind == "bool_value":
            return value.bool_value
        if kind == "struct_value":
            return self.entries(value.struct_value.fields.items(), _join(parent, key), depth + 1)
        if kind == "list_value":
            path = _join(parent, key)
            if depth + 1 > MAX_PROPERTY_DEPTH:
                self.violations.append(FieldViolation(path, DEPTH_RULE))
                return []
            return [self.value(item, path, i, depth + 1)
                    for i, item in enumerate(value.list_value.values)]
        return None  # null_value, or unset (which JSON cannot express) read as null


class _PlainProperties(_Walker[Any]):
    """:class:`StructProperties`' rules, messages and paths on orjson-decoded JSON values.

    Depth is counted as there (the properties object is level 1; an array is checked
    before it is entered), so the recursion stops :data:`MAX_PROPERTY_DEPTH` levels
    down whatever the JSON's own depth (orjson's parser stops at 1024)."""

    def object(self, values: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        return self.entries(values.items(), path, depth)

    def value(self, value: Any, parent: str, key: str | int, depth: int) -> Any:
        kind = type(value)
        if kind is str or kind is bool or value is None:
            return value
        if kind is int:
            if -_EXACT_INT <= value <= _EXACT_INT:
                return value
            # What a Struct would hold: the nearest double (orjson gives integers beyond
            # 64 bits as doubles already).
            return _number(float(value), parent, key, self.violations)
        if kind is float:
            return _number(value, parent, key, self.violations)
        if kind is dict:
            return self.entries(value.items(), _join(parent, key), depth + 1)
        if kind is list:
            path = _join(parent, key)
            if depth + 1 > MAX_PROPERTY_DEPTH:
                self.violations.append(FieldViolation(path, DEPTH_RULE))
                return []
            return [self.value(item, path, i, depth + 1) for i, item in enumerate(value)]
        raise TypeError(f"orjson decoded a {kind.__name__}")  # pragma: no cover


def _clean(values: dict[str, Any] | list[Any], depth: int) -> bool:
    """Whether ``values`` (at ``depth``) is stored exactly as parsed: no rule broken, no
    number to normalize. One pass over the entries, each key checked with its value
    (:func:`valid_property_key`), building nothing; :class:`_PlainProperties` does the
    rest when it is not."""
    if depth > MAX_PROPERTY_DEPTH:
        return False
    if isinstance(values, list):
        return all(_clean_value(value, depth) for value in values)
    return all(valid_property_key(key) and len(key) <= MAX_PROPERTY_KEY_CHARS
               and _clean_value(value, depth) for key, value in values.items())


def _clean_value(value: Any, depth: int) -> bool:
    """Whether ``value`` (in an object or array at ``depth``) is stored as parsed."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_EXACT_INT <= value <= _EXACT_INT)
    if kind is float:
        return not value.is_integer() and math.isfinite(value)
    if kind is dict or kind is list:
        return _clean(value, depth + 1)
    return False  # pragma: no cover - orjson decodes no other types


def _duplicate_key(raw: bytes) -> str | None:
    """The first key found twice in one object of ``raw`` (valid JSON, nested at most
    :data:`MAX_PROPERTY_DEPTH` levels: the standard library's parser is recursive)."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if not found and len({key for key, _ in items}) < len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    found.append(key)
                    break
                seen.add(key)
        return {}

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # pragma: no cover - orjson parsed it already
        return None
    return found[0] if found else None


def too_many_keys(count: int, limit: int, kind: str, path: str,
                  violations: list[FieldViolation]) -> bool:
    """Whether the object at ``path`` holds more than ``limit`` keys (then with a violation);
    ``kind`` names them in the message (``property``, ``trait``)."""
    if count <= limit:
        return False
    violations.append(FieldViolation(path, f"at most {limit} {kind} keys are allowed"))
    return True


def struct_properties(struct: struct_pb2.Struct, path: str,
                      violations: list[FieldViolation]) -> dict[str, Any]:
    """``properties`` of the event at ``path`` as stored."""
    props_path = f"{path}.properties"
    if too_many_keys(len(struct.fields), MAX_PROPERTY_KEYS, "property", props_path, violations):
        return {}
    properties = StructProperties(violations).struct(struct, props_path, 1)
    check_json_size(violations, props_path, properties)
    return properties


def json_object(raw: bytes, json_path: str,
                violations: list[FieldViolation]) -> dict[str, Any] | None:
    """``raw`` (the field at ``json_path``) as the one UTF-8 JSON object it must be; None,
    with a violation, when it is not."""
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        violations.append(FieldViolation(
            json_path, f"must be one UTF-8 JSON object (no NaN or Infinity): {exc}"))
        return None
    if type(values) is not dict:
        violations.append(FieldViolation(
            json_path, f"must be a JSON object, not {_JSON_TYPES[type(values)]}"))
        return None
    return values


def properties_as_sent(raw: bytes) -> dict[str, Any] | None:
    """``properties_json`` as stored, when it is stored as sent: one compact JSON object
    (the form the gateway's ``orjson.dumps`` writes) of at most
    :data:`MAX_PROPERTY_KEYS` keys breaking no rule, holding no number to normalize and
    within the size limit. None for anything else, which :func:`json_properties` then
    reads with the field paths of its violations.

    The event's one walk of its properties: parsed once (orjson), each entry checked once
    (:func:`_clean`), encoded once to compare with ``raw``, which also measures the size
    and settles that no key is there twice (orjson keeps the last of duplicate keys, so
    the bytes of an object with one differ from its encoding). No path string is built.
    """
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(values) is not dict or len(values) > MAX_PROPERTY_KEYS \
            or len(raw) > MAX_PROPERTIES_BYTES or not _clean(values, 1) \
            or orjson.dumps(values) != raw:
        return None
    return values


def json_properties(raw: bytes, path: str,
                     violations: list[FieldViolation]) -> dict[str, Any]:
    """``properties_json`` of the event at ``path`` as stored, by the Struct's rules
    (:func:`properties_as_sent` is the short way for properties stored as sent)."""
    json_path = f"{path}.properties_json"
    values = json_object(raw, json_path, violations)
    if values is None:
        return {}
    props_path = f"{path}.properties"
    if too_many_keys(len(values), MAX_PROPERTY_KEYS, "property", props_path, violations):
        return {}
    before = len(violations)
    # Most properties break no rule and hold no number to normalize: stored as parsed.
    clean = _clean(values, 1)
    properties = values if clean else _PlainProperties(violations).object(values, props_path, 1)
    stored = orjson.dumps(properties)
    check_size(violations, props_path, len(stored))
    # orjson keeps the last of duplicate keys. Bytes equal to a dict's encoding have
    # none, which settles it for every producer that writes compact JSON (the gateway's
    # orjson.dumps) without a second parse.
    if len(violations) == before and stored != raw \
            and (clean or orjson.dumps(values) != raw):
        duplicate = _duplicate_key(raw)
        if duplicate is not None:
            violations.append(FieldViolation(
                json_path, f"has the key {duplicate!r} twice in one object "
                "(JSON object keys must be unique)"))
    return properties


def check_json_size(
    violations: list[FieldViolation], path: str, value: dict[str, Any]
) -> None:
    # Measured as compact JSON, the form clients write and reason about. The gRPC
    # message limit (16 MB) bounds the conversion done before this check.
    check_size(violations, path, len(orjson.dumps(value)))


def check_size(violations: list[FieldViolation], path: str, size: int) -> bool:
    """Whether ``size`` bytes of JSON at ``path`` are allowed (if not, with a violation)."""
    if size > MAX_PROPERTIES_BYTES:
        violations.append(FieldViolation(
            path, f"must be at most {MAX_PROPERTIES_BYTES} bytes as JSON"))
        return False
    return True
