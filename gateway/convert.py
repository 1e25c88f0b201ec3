"""JSON values -> protobuf: properties into ``google.protobuf.Struct``, times into Timestamp.

Only what the wire format itself cannot carry is refused here: integers beyond ±2^53
(a Struct number is a double and would silently round them), non-finite numbers, and
nesting deeper than a proto message can be decoded. Every other limit on properties is
the server's.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from gateway.grpc_errors import Problem, ProblemError

MAX_EXACT_INT = 2**53
# The server allows 32 levels; protobuf's decoder stops at 100 message levels, and each
# JSON level costs two (Value, Struct), so anything past 40 cannot reach the server.
MAX_WIRE_DEPTH = 40


class UnencodableValue(ValueError):
    def __init__(self, path: str, description: str) -> None:
        super().__init__(f"{path} {description}")
        self.path = path
        self.description = description


def fill_struct(struct: struct_pb2.Struct, values: dict[str, Any], path: str,
                depth: int = 1) -> None:
    if depth > MAX_WIRE_DEPTH:
        raise UnencodableValue(path, f"nests deeper than {MAX_WIRE_DEPTH} levels")
    fields = struct.fields
    for key, value in values.items():
        _fill_value(fields[key], value, f"{path}.{key}", depth)


def _fill_value(target: struct_pb2.Value, value: Any, path: str, depth: int) -> None:
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            raise UnencodableValue(
                path, "is an integer beyond ±2^53; send it as a string to keep every digit")
        target.number_value = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise UnencodableValue(path, "must be a finite number")
        target.number_value = value
    elif value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, dict):
        fill_struct(target.struct_value, value, path, depth + 1)
    elif isinstance(value, list):
        if depth + 1 > MAX_WIRE_DEPTH:
            raise UnencodableValue(path, f"nests deeper than {MAX_WIRE_DEPTH} levels")
        items = target.list_value.values
        for index, item in enumerate(value):
            _fill_value(items.add(), item, f"{path}[{index}]", depth + 1)
    else:  # pragma: no cover - JSON decoding yields no other types
        raise UnencodableValue(path, f"has an unsupported type {type(value).__name__}")


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return ts


def timestamp_from_millis(millis: int | float) -> timestamp_pb2.Timestamp:
    """Unix milliseconds (a fraction is cut off, as JavaScript's Date does)."""
    ts = timestamp_pb2.Timestamp()
    ts.FromMilliseconds(math.floor(millis))
    return ts


def problem(status: int, error: UnencodableValue) -> ProblemError:
    return ProblemError(Problem(status, str(error), error.path, "INVALID_ARGUMENT"))


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
