"""The gateway's JSON -> protobuf conversions on their own (trackd/gateway/convert.py): times into
Timestamps at the edges of years 1 and 9999, Unix milliseconds, Struct filling and reading
back, and the nesting depth at exactly the decoder's limit.

The depth boundary is checked against protobuf's own decoder too: a request the check lets
through decodes, one level more does not (tests/gateway/test_hostile_input.py holds it
route by route, over HTTP).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from hypothesis import given
from hypothesis import strategies as st

from trackd.gateway.convert import (
    UnencodableValue,
    check_depth,
    fill_struct,
    struct_values,
    timestamp,
    timestamp_from_millis,
)
from trackd.gateway.dialects.vibefollow import VIBEFOLLOW
from trackd.v1 import tracking_pb2

OUT_OF_RANGE = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
FIRST_SECOND = -62_135_596_800  # 0001-01-01T00:00:00Z in Unix seconds
LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z


def unencodable(call: Any, *args: Any) -> UnencodableValue:
    with pytest.raises(UnencodableValue) as caught:
        call(*args)
    return caught.value


# --- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds", "nanos"), [
    (datetime(1, 1, 1, tzinfo=UTC), FIRST_SECOND, 0),
    (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), LAST_SECOND, 999_999_000),
    (datetime(1970, 1, 1, tzinfo=UTC), 0, 0),
    (datetime(2024, 1, 15, 9, 30, 0, 123_456), 1_705_311_000, 123_456_000),  # naive: UTC
    # An offset that lands inside the range once converted to UTC.
    (datetime(1, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))), FIRST_SECOND, 0),
    (datetime(9999, 12, 31, 22, 59, 59, tzinfo=timezone(timedelta(hours=-1))),
     LAST_SECOND, 0),
    (datetime(2024, 1, 15, 11, 0, tzinfo=timezone(timedelta(hours=2))), 1_705_309_200, 0),
])
def test_times_become_utc_timestamps(value: datetime, seconds: int, nanos: int) -> None:
    ts = timestamp(value, "timestamp")
    assert (ts.seconds, ts.nanos) == (seconds, nanos)


@pytest.mark.parametrize("value", [
    # Valid datetimes whose UTC instant is before year 1 or after 9999.
    datetime(1, 1, 1, 0, 59, 59, tzinfo=timezone(timedelta(hours=1))),
    datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2))),
    datetime.min.replace(tzinfo=timezone(timedelta(minutes=1))),
    datetime.max.replace(tzinfo=timezone(timedelta(minutes=-1))),
])
def test_times_outside_years_1_to_9999_in_utc_name_their_path(value: datetime) -> None:
    error = unencodable(timestamp, value, "events[3].timestamp")
    assert (error.path, error.description) == ("events[3].timestamp", OUT_OF_RANGE)
    assert str(error) == f"events[3].timestamp {OUT_OF_RANGE}"


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59,
                                                                     999_999),
                    timezones=st.just(UTC)))
def test_a_timestamp_holds_the_instant_to_the_microsecond(value: datetime) -> None:
    assert timestamp(value, "t").ToDatetime(tzinfo=UTC) == value


@pytest.mark.parametrize(("millis", "seconds", "nanos"), [
    (0, 0, 0),
    (1_700_000_000_123, 1_700_000_000, 123_000_000),
    (1.9, 0, 1_000_000),  # a fraction of a millisecond is cut off...
    (-1.5, -1, 998_000_000),  # ...towards the past, as JavaScript's Date does
    (-1, -1, 999_000_000),
])
def test_unix_milliseconds(millis: float, seconds: int, nanos: int) -> None:
    ts = timestamp_from_millis(millis)
    assert (ts.seconds, ts.nanos) == (seconds, nanos)


@given(st.integers(FIRST_SECOND * 1000, LAST_SECOND * 1000 + 999))
def test_whole_milliseconds_round_trip(millis: int) -> None:
    assert timestamp_from_millis(millis).ToMilliseconds() == millis


# --- structs ---------------------------------------------------------------------------------


def filled(values: dict[str, Any], at: int = 2) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    fill_struct(struct, values, "properties", at)
    return struct


def test_each_json_value_gets_its_kind() -> None:
    struct = filled({"s": "x", "t": True, "f": False, "i": 7, "x": 1.5, "n": None,
                     "edge": 2**53, "low": -(2**53), "empty_list": [], "empty_object": {},
                     "list": [1, "a", [None]], "object": {"k": {"j": 0}}})
    kinds = {key: value.WhichOneof("kind") for key, value in struct.fields.items()}
    assert kinds == {"s": "string_value", "t": "bool_value", "f": "bool_value",
                     "i": "number_value", "x": "number_value", "n": "null_value",
                     "edge": "number_value", "low": "number_value",
                     "empty_list": "list_value", "empty_object": "struct_value",
                     "list": "list_value", "object": "struct_value"}
    assert struct_values(struct) == {
        "s": "x", "t": True, "f": False, "i": 7, "x": 1.5, "n": None, "edge": 2**53,
        "low": -(2**53), "empty_list": [], "empty_object": {}, "list": [1, "a", [None]],
        "object": {"k": {"j": 0}}}
    assert type(struct_values(struct)["t"]) is bool
    assert type(struct_values(struct)["i"]) is int


def test_numbers_read_back_as_integers_only_when_exact() -> None:
    struct = struct_pb2.Struct()
    struct.update({"whole": 3.0, "half": 2.5, "big": float(2**60), "edge": float(2**53)})
    values = struct_values(struct)
    assert values == {"whole": 3, "half": 2.5, "big": float(2**60), "edge": 2**53}
    assert [type(values[k]) for k in ("whole", "half", "big", "edge")] == [int, float, float,
                                                                          int]


@pytest.mark.parametrize(("values", "path", "description"), [
    ({"big": 2**53 + 1}, "properties.big",
     "is an integer beyond ±2^53; send it as a string to keep every digit"),
    ({"a": [0, {"b": -(2**53) - 1}]}, "properties.a[1].b",
     "is an integer beyond ±2^53; send it as a string to keep every digit"),
    ({"x": math.nan}, "properties.x", "must be a finite number"),
    ({"x": [math.inf]}, "properties.x[0]", "must be a finite number"),
    ({"o": {"x": -math.inf}}, "properties.o.x", "must be a finite number"),
])
def test_what_a_struct_cannot_carry_is_refused_by_path(
        values: dict[str, Any], path: str, description: str) -> None:
    error = unencodable(filled, values)
    assert (error.path, error.description) == (path, description)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=12)


@given(st.dictionaries(st.text(max_size=3), JSON, max_size=4))
def test_json_values_round_trip(values: dict[str, Any]) -> None:
    # Numbers come back equal (an integral float as an int: 2.0 == 2).
    assert struct_values(filled(values)) == values


def test_an_unencodable_value_is_a_problem_of_the_dialects_status_naming_the_field() -> None:
    found = VIBEFOLLOW.unencodable(UnencodableValue("properties.x", "must be a finite number"))
    assert (found.status, found.message, found.field, found.reason) == (
        VIBEFOLLOW.invalid_status, "properties.x must be a finite number", "properties.x",
        "INVALID_ARGUMENT")


# --- depth -----------------------------------------------------------------------------------


def objects(count: int) -> dict[str, Any]:
    """``count`` objects, each in the one before (the outermost is the Struct itself)."""
    value: dict[str, Any] = {"x": 1}
    for _ in range(count - 1):
        value = {"k": value}
    return value


def arrays(count: int) -> dict[str, Any]:
    """An object holding ``count`` arrays, each in the one before."""
    value: list[Any] = [1]
    for _ in range(count - 1):
        value = [value]
    return {"k": value}


def too_deep(values: dict[str, Any], at: int) -> UnencodableValue:
    return unencodable(check_depth, values, "properties", at)


@pytest.mark.parametrize(("at", "most"), [(1, 33), (2, 33), (3, 32)])
def test_objects_nest_up_to_the_decoders_limit(at: int, most: int) -> None:
    check_depth(objects(most), "properties", at)
    error = too_deep(objects(most + 1), at)
    assert error.path == "properties" + ".k" * most  # the object one level too deep
    assert error.description == (
        f"nests too deeply for protobuf to decode (at most {most} nested objects here; an "
        "array counts two thirds of one)")


def test_arrays_nest_48_deep_below_one_object() -> None:
    check_depth(arrays(48), "properties", 2)
    assert too_deep(arrays(49), 2).path == "properties.k" + "[0]" * 48


def test_an_empty_innermost_object_still_counts() -> None:
    value: dict[str, Any] = {}
    for _ in range(33):
        value = {"k": value}  # 34 objects, the innermost empty
    assert too_deep(value, 2).path == "properties" + ".k" * 33


def test_nothing_is_built_from_a_value_too_deep() -> None:
    struct = struct_pb2.Struct()
    with pytest.raises(UnencodableValue):
        fill_struct(struct, {"ok": 1, "deep": objects(40)}, "properties", 2)
    assert struct == struct_pb2.Struct()


@pytest.mark.parametrize("count", [33, 34])
def test_the_boundary_is_the_decoders(count: int) -> None:
    """Properties sit two levels below TrackEventRequest: 33 objects decode, 34 do not."""
    request = tracking_pb2.TrackEventRequest()
    request.event.properties.update(objects(count))  # update() checks no depth
    data = request.SerializeToString()
    if count == 33:
        fill_struct(struct_pb2.Struct(), objects(count), "properties", 2)
        assert tracking_pb2.TrackEventRequest.FromString(data) == request
    else:
        too_deep(objects(count), 2)
        with pytest.raises(DecodeError):
            tracking_pb2.TrackEventRequest.FromString(data)
