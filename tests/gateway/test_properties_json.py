"""trackd.gateway.convert.properties_json refuses exactly what fill_struct refuses, with the same
path and description, and otherwise writes the same values as compact JSON, keys sorted.

The REST answers these refusals become are the dialects' tests (depth per route in
test_hostile_input.py, integers beyond ±2^53 in each dialect's); this pins the two
conversions to each other over many shapes, depths included, at every level a dialect
fills properties from.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.protobuf import struct_pb2

from trackd.gateway.convert import UnencodableValue, fill_struct, properties_json

BIG = 2**53 + 1


def objects(levels: int, leaf: Any = None) -> dict[str, Any]:
    inner: Any = {} if leaf is None else {"x": leaf}
    for _ in range(levels - 1):
        inner = {"a": inner}
    return dict(inner)


def arrays(levels: int, leaf: Any = None) -> dict[str, Any]:
    inner: Any = [] if leaf is None else [leaf]
    for _ in range(levels):
        inner = [inner]
    return {"a": inner}


def mixed(levels: int, leaf: Any = None) -> dict[str, Any]:
    inner: Any = {} if leaf is None else {"x": leaf}
    for i in range(levels):
        inner = {"a": [inner, {}]} if i % 2 else [[], inner]
    return {"r": inner}


SHAPES = [make(n, leaf) for make in (objects, arrays, mixed) for n in range(1, 52, 2)
          for leaf in (None, 1, BIG)]
SHAPES += [
    {"a": BIG, "b": float("inf")}, {"a": [1, {"b": -BIG}], "c": BIG}, {"n": float("nan")},
    {"a": 2**53, "b": -(2**53), "c": 1e300, "s": "é", "t": True, "z": None},
    {"b": 1, "a": {"d": 2, "c": 3}}, {**objects(40), "big": BIG},
]


def outcome(convert: Any) -> tuple[str, str] | None:
    try:
        convert()
    except UnencodableValue as exc:
        return exc.path, exc.description
    return None


@pytest.mark.parametrize("at", [1, 2])
@pytest.mark.parametrize("values", SHAPES)
def test_refuses_what_fill_struct_refuses_and_writes_the_rest(
        values: dict[str, Any], at: int) -> None:
    struct = struct_pb2.Struct()
    expected = outcome(lambda: fill_struct(struct, values, "properties", at))
    written: list[bytes] = []

    got = outcome(lambda: written.append(properties_json(values, "properties", at)))

    assert got == expected
    if expected is None:
        (raw,) = written
        assert raw == orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
        assert orjson.loads(raw) == values
