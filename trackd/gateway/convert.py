"""JSON values -> protobuf: properties into ``google.protobuf.Struct``, times into Timestamp.

Only what the wire format itself cannot carry is refused here: integers beyond ±2^53
(a Struct number is a double and would silently round them), non-finite numbers,
nesting deeper than a proto message can be decoded, and times outside a Timestamp's
years 1 to 9999 (UTC). Every other limit on properties is the server's.

Depth is counted the way protobuf's decoder (upb) counts it: every message on the way
down is one level, and it refuses a message more than ``MAX_DECODE_DEPTH`` levels below
the request (:mod:`trackd.wire.limits`). A JSON object inside a Struct costs three (map
entry, ``Value``, ``Struct``), an array two (``Value``, ``ListValue``); the Struct field
itself sits ``at`` levels below the request (``TrackEventRequest.event.properties``: 2).
Measured with python-protobuf 7.36 (upb) for every request that carries a Struct:
properties or traits nested 33 objects deep decode, 34 do not (arrays: 48 below one
object); tests/gateway/test_hostile_input.py holds it route by route.

An event's properties cross the hop as JSON bytes (``Event.properties_json``, made by
:func:`properties_json`), which protobuf never walks: they are refused where
:func:`fill_struct` would refuse them, depth included, so what a REST client sees does
not depend on the encoding.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf import struct_pb2, timestamp_pb2

from trackd.wire.limits import DEPTH_EVENT_PROPERTIES, MAX_DECODE_DEPTH, decodable_objects

MAX_EXACT_INT = 2**53
# Where the Struct (or Value) fields the gateway fills sit below their request message
# (DEPTH_EVENT_PROPERTIES, imported above, is the wire's: the server's rule depends on it).
DEPTH_USER_TRAITS = 2  # UpsertUserRequest.user / BatchUpsertUsersRequest.users[]
DEPTH_IDENTIFY_TRAITS = 1  # IdentifyRequest.traits
# EvaluateAudienceRequest.audience.groups[].rules[].property.value is a Value 5 levels
# down, filled through a holder Struct whose Values sit two below it.
DEPTH_RULE_VALUE = 3


class UnencodableValue(ValueError):
    def __init__(self, path: str, description: str) -> None:
        super().__init__(f"{path} {description}")
        self.path = path
        self.description = description


def fill_struct(struct: struct_pb2.Struct, values: dict[str, Any], path: str,
                at: int = DEPTH_EVENT_PROPERTIES) -> None:
    """Fill ``struct`` (``at`` message levels below its request) from JSON ``values``.

    The depth is checked over the whole value first, so nothing is built from a value
    the server could not decode."""
    check_depth(values, path, at)
    fields = struct.fields
    for key, value in values.items():
        _fill_value(fields[key], value, f"{path}.{key}")


def check_depth(values: dict[str, Any], path: str, at: int) -> None:
    """UnencodableValue if a Struct of ``values``, ``at`` levels down, nests too deep."""
    error = depth_error(values, path, at)
    if error is not None:
        raise error


def depth_error(values: dict[str, Any], path: str, at: int) -> UnencodableValue | None:
    """What :func:`check_depth` raises for ``values``, naming the place; None if nothing."""
    # Iterative, so a deep value costs no Python recursion. A Struct at level d holds
    # map entries at d + 1 and Values at d + 2; a ListValue at d holds Values at d + 1;
    # a Value holding an object or array holds it one level further down.
    todo: list[tuple[dict[str, Any] | list[Any], int, str]] = [(values, at, path)]
    while todo:
        container, depth, where = todo.pop()
        step = 3 if isinstance(container, dict) else 2
        deepest = depth + step - 1 if container else depth
        if deepest > MAX_DECODE_DEPTH:
            return UnencodableValue(
                where, "nests too deeply for protobuf to decode (at most "
                f"{decodable_objects(at)} "
                "nested objects here; an array counts two thirds of one)")
        if isinstance(container, dict):
            todo.extend((item, depth + 3, f"{where}.{key}") for key, item in container.items()
                        if isinstance(item, dict | list))
        else:
            todo.extend((item, depth + 2, f"{where}[{index}]")
                        for index, item in enumerate(container) if isinstance(item, dict | list))
    return None


def properties_json(values: dict[str, Any], path: str,
                    at: int = DEPTH_EVENT_PROPERTIES) -> bytes:
    """``values`` as ``Event.properties_json``: UnencodableValue exactly where
    :func:`fill_struct` would raise it (depth first, then the first bad number in the
    same order), else compact JSON with sorted keys, so that, as with a Struct's
    deterministic encoding, key order does not change a request's idempotency
    fingerprint."""
    try:
        bad_number = _scan(values, at)
    except _TooDeep:
        error = depth_error(values, path, at)
        if error is None:  # pragma: no cover - both count levels alike (tests/gateway)
            raise AssertionError("_scan and depth_error disagree on depth") from None
        raise error from None
    if bad_number:
        _check_numbers(values, path)  # raises, naming the number
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)


class _TooDeep(Exception):
    pass


def _scan(container: dict[str, Any] | list[Any], depth: int) -> bool:
    """Whether ``container`` (``depth`` message levels down) holds a number a Struct
    cannot carry; _TooDeep where :func:`check_depth` would refuse it. One pass, no path
    built: the slower checks run again only to name what this found."""
    values: Any
    if type(container) is dict:
        step, values = 3, container.values()
    else:
        step, values = 2, container
    # As check_depth: a container's entries sit step - 1 levels below it.
    if (depth + step - 1 if container else depth) > MAX_DECODE_DEPTH:
        raise _TooDeep
    child = depth + step
    bad = False
    for value in values:
        kind = type(value)
        if kind is int:
            bad = bad or not -MAX_EXACT_INT <= value <= MAX_EXACT_INT
        elif kind is float:
            bad = bad or not math.isfinite(value)
        elif kind is dict or kind is list:
            bad = _scan(value, child) or bad
    return bad


def _check_numbers(container: dict[str, Any] | list[Any], path: str) -> None:
    items = container.items() if type(container) is dict else enumerate(container)
    for key, value in items:
        kind = type(value)
        if kind is int:
            if not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
                raise UnencodableValue(_at(path, key), BEYOND_EXACT)
        elif kind is float:
            if not math.isfinite(value):
                raise UnencodableValue(_at(path, key), NOT_FINITE)
        elif kind is dict or kind is list:
            _check_numbers(value, _at(path, key))


def _at(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if type(key) is int else f"{path}.{key}"


BEYOND_EXACT = "is an integer beyond ±2^53; send it as a string to keep every digit"
NOT_FINITE = "must be a finite number"


def _fill_value(target: struct_pb2.Value, value: Any, path: str) -> None:
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            raise UnencodableValue(path, BEYOND_EXACT)
        target.number_value = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UnencodableValue(path, NOT_FINITE)
        target.number_value = value
    elif value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, dict):
        fields = target.struct_value.fields
        if not value:
            target.struct_value.SetInParent()
        for key, item in value.items():
            _fill_value(fields[key], item, f"{path}.{key}")
    elif isinstance(value, list):
        items = target.list_value.values
        if not value:
            target.list_value.SetInParent()
        for index, item in enumerate(value):
            _fill_value(items.add(), item, f"{path}[{index}]")
    else:  # pragma: no cover - JSON decoding yields no other types
        raise UnencodableValue(path, f"has an unsupported type {type(value).__name__}")


def timestamp(value: datetime, path: str) -> timestamp_pb2.Timestamp:
    """``value`` (naive means UTC) as a Timestamp; UnencodableValue naming ``path`` when
    it falls outside a Timestamp's years 1 to 9999 once converted to UTC."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError as exc:  # the offset pushes it past year 1 or 9999
        raise UnencodableValue(path, OUT_OF_RANGE) from exc
    ts = timestamp_pb2.Timestamp()
    try:
        ts.FromDatetime(utc)
    except (OverflowError, ValueError) as exc:
        raise UnencodableValue(path, OUT_OF_RANGE) from exc
    return ts


OUT_OF_RANGE = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"


def timestamp_from_millis(millis: int | float) -> timestamp_pb2.Timestamp:
    """Unix milliseconds (a fraction is cut off, as JavaScript's Date does)."""
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(math.floor(millis))
    return ts


def struct_values(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct back to JSON values; integral numbers within ±2^53 become integers."""
    return {key: _plain(value) for key, value in struct.fields.items()}


def _plain(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and -MAX_EXACT_INT <= number <= MAX_EXACT_INT:
            return int(number)
        return number
    if kind == "struct_value":
        return struct_values(value.struct_value)
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None
