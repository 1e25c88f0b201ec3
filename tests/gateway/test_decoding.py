"""trackd.gateway.decoding: every body schema gives what pydantic's TypeAdapter over the same
TypedDict gives (the value, or the same first error), whether msgspec decoded it or
pydantic judged it; the REST answers built from them are the dialect tests'.

The bodies: each fuzzed route's valid seed (tests/gateway/fuzz_routes.py) mutated at the JSON
level by a seeded, bounded Hypothesis run, and the edges where msgspec alone would differ
from pydantic (date-time forms and fractions, nesting, NaN, integers past 64 bits,
invalid text, duplicate keys).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.gateway.fuzz_routes import ROUTES
from trackd.gateway.decoding import MAX_FAST_DEPTH, BodySchema, shallow
from trackd.gateway.dialects import (
    amplitude,
    cueflow,
    cueflow_audiences,
    databuddy,
    flywheel,
    posthog,
    segment,
    vibefollow,
)


def _typed_keys(core: Any) -> set[str]:
    """The field names of every typed dict in a pydantic core schema."""
    found: set[str] = set()
    if isinstance(core, dict):
        if core.get("type") == "typed-dict":
            found |= set(core["fields"])
        for item in core.values():
            found |= _typed_keys(item)
    elif isinstance(core, list):
        for item in core:
            found |= _typed_keys(item)
    return found


# Each JSON body schema, with the fuzzed route whose seed is its valid body.
SCHEMAS: dict[str, tuple[BodySchema[Any], str, str]] = {
    "vibefollow event": (vibefollow.EVENT, "POST", "/api/v1/events"),
    "vibefollow batch": (vibefollow.BATCH, "POST", "/api/v1/events/batch"),
    "vibefollow user": (vibefollow.USER, "POST", "/api/v1/users"),
    "vibefollow users": (vibefollow.USERS_BULK, "POST", "/api/v1/users/bulk"),
    "flywheel": (flywheel.BODY, "POST", "/v1/events"),
    "databuddy track": (databuddy.TRACK_BODY, "POST", "/track"),
    "databuddy identify": (databuddy.IDENTIFY_BODY, "POST", "/identify"),
    "cueflow contact": (cueflow.NEW_CONTACT, "POST", "/api/v1/contacts"),
    "cueflow change": (cueflow.CONTACT_CHANGE, "PATCH", "/api/v1/contacts/c1"),
    "cueflow event": (cueflow.EVENT, "POST", "/api/v1/events"),
    "cueflow evaluate": (cueflow_audiences.EVALUATE, "POST", "/api/v1/audiences/evaluate"),
    "cueflow match": (cueflow_audiences.AUDIENCE, "POST", "/api/v1/contacts/c1/match"),
    "segment batch": (segment.BATCH, "POST", "/v1/batch"),
    "segment message": (segment.MESSAGE, "POST", "/v1/track"),
    "posthog body": (posthog.BODY, "POST", "/batch/"),
    "amplitude": (amplitude.BODY, "POST", "/2/httpapi"),
}


# Every field name of every body TypedDict (their order is free, see comparable).
TYPED_KEYS = {name for schema, _, _ in SCHEMAS.values()
              for name in _typed_keys(schema.adapter.core_schema)}


def _seed(method: str, path: str, index: int = 0) -> Any:
    seeds = [route.seed for route in ROUTES if (route.method, route.path) == (method, path)]
    return seeds[min(index, len(seeds) - 1)]


def _seed_for(name: str) -> Any:
    _, method, path = SCHEMAS[name]
    # /track and /api/v1/events have two owners: Databuddy's and Cueflow's seed come first
    # and second respectively.
    return _seed(method, path, 1 if name == "cueflow event" else 0)


def outcome(judge: Any, raw: Any) -> tuple[str, Any]:
    """("value", the value) or ("error", pydantic's first error without its input)."""
    try:
        return "value", judge(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        return "error", (first["type"], first["loc"], first["msg"])


def comparable(value: Any) -> Any:
    """``value`` with each NaN as text (a NaN is not equal to itself) and each date-time
    as its ISO form (msgspec's offsets are ``datetime.timezone``, pydantic's its own
    tzinfo class). Dicts compare
    without their order: a body's own fields may come in another order (nothing reads
    them in order; Amplitude's client context is written with sorted keys), while the
    order of free-form objects (properties) is checked by :func:`same_order`."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, datetime):  # the same instant and offset, whichever tzinfo class
        return ("datetime", value.isoformat())
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [comparable(item) for item in value]
    return value


def same_order(fast: Any, slow: Any) -> bool:
    """Whether every dict in ``fast`` lists the keys its twin in ``slow`` lists, in order,
    for the free-form ones: those whose keys are not all a TypedDict's."""
    if isinstance(fast, dict) and isinstance(slow, dict):
        shared = [key for key in fast if key in slow]
        return all(same_order(fast[key], slow[key]) for key in shared) and (
            sorted(fast) != sorted(slow) or list(fast) == list(slow)
            or set(fast) <= TYPED_KEYS)
    if isinstance(fast, list) and isinstance(slow, list):
        return all(same_order(a, b) for a, b in zip(fast, slow, strict=False))
    return True


def assert_same(schema: BodySchema[Any], raw: bytes) -> None:
    fast, slow = outcome(schema.validate_json, raw), outcome(schema.adapter.validate_json, raw)
    assert comparable(fast) == comparable(slow)
    assert same_order(fast, slow)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    | st.sampled_from(["", "2024-01-15T10:30:00Z", "2024-01-15T10:30:00.1234567+01:00",
                       "2024-01-15", "2024-01-15T10:30Z", "9999-12-31T23:59:59-01:00",
                       "12345678-1234-5678-1234-567812345678", "track", "auto"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=12)


def _mutate(draw: Any, value: Any, depth: int = 0) -> Any:
    """``value`` with one place replaced by arbitrary JSON or dropped, at any depth."""
    if isinstance(value, dict) and value and depth < 4 and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        choice = draw(st.sampled_from(["replace", "drop", "descend"]))
        out = dict(value)
        if choice == "drop":
            del out[key]
        elif choice == "replace":
            out[key] = draw(json_values)
        else:
            out[key] = _mutate(draw, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and depth < 4 and draw(st.booleans()):
        at = draw(st.integers(0, len(value) - 1))
        return [*value[:at], _mutate(draw, value[at], depth + 1), *value[at + 1:]]
    return draw(json_values) if draw(st.booleans()) else value


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_seed_body_decodes_as_pydantic_does(name: str) -> None:
    schema = SCHEMAS[name][0]
    raw = orjson.dumps(_seed_for(name))
    assert outcome(schema.validate_json, raw)[0] == "value"
    assert_same(schema, raw)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_body_decodes_as_pydantic_does(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name][0]
    body = _mutate(data.draw, _seed_for(name))
    assert_same(schema, json.dumps(body).encode())  # orjson stops at 64-bit integers


EDGES = [
    # Date-times: a fraction past microseconds is cut (msgspec alone would round), forms
    # msgspec does not read, offsets, and one without a zone where one is required.
    b'{"external_user_id":"u","name":"n","timestamp":"2024-01-01T00:00:00.9999996Z"}',
    b'{"external_user_id":"u","name":"n","timestamp":"2024-01-01T00:00Z"}',
    b'{"external_user_id":"u","name":"n","timestamp":"2024-01-01_00:00:00Z"}',
    b'{"external_user_id":"u","name":"n","timestamp":"1700000000"}',
    b'{"external_user_id":"u","name":"n","timestamp":"2024-01-01T00:00:00+24:00"}',
    b'{"external_user_id":"u","name":"n","timestamp":17}',
    # Numbers msgspec refuses and pydantic takes, and integers past 64 bits.
    b'{"external_user_id":"u","name":"n","properties":{"a":NaN,"b":Infinity}}',
    b'{"external_user_id":"u","name":"n","properties":{"a":1e400}}',
    b'{"external_user_id":"u","name":"n","properties":{"a":100000000000000000000000}}',
    # Text: invalid UTF-8, a lone surrogate; duplicate keys (the last one counts).
    b'{"external_user_id":"u","name":"\xff"}',
    b'{"external_user_id":"u","name":"\\ud800"}',
    b'{"external_user_id":"u","name":"","name":"n"}',
    b'{"external_user_id":"u","name":"n","name":""}',
    # Not JSON, not an object, empty.
    b'', b'[]', b'{"external_user_id":"u",', b'null', b'{"external_user_id":"u"} x',
]


@pytest.mark.parametrize("raw", EDGES)
def test_edge_bodies_decode_as_pydantic_does(raw: bytes) -> None:
    assert_same(vibefollow.EVENT, raw)


@pytest.mark.parametrize("depth", [MAX_FAST_DEPTH - 3, MAX_FAST_DEPTH + 1, 199, 200, 201,
                                   300])
def test_deep_bodies_decode_as_pydantic_does(depth: int) -> None:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    if depth < 250:  # orjson writes at most 254 levels; deeper bodies written by hand
        assert_same(vibefollow.EVENT, orjson.dumps(
            {"external_user_id": "u", "name": "n", "properties": {"p": value}}))
    deep = b'{"external_user_id":"u","name":"n","properties":' + b'{"a":' * depth + b'1' \
        + b'}' * (depth + 1)
    assert_same(vibefollow.EVENT, deep)


def test_flywheel_needs_an_offset_as_pydantic_says() -> None:
    for when in ("2024-01-01T00:00:00", "2024-01-01T00:00:00+02:00"):
        assert_same(flywheel.BODY, orjson.dumps({"event": {"event": "x", "timestamp": when}}))


def test_amplitude_keeps_unknown_fields_as_pydantic_does() -> None:
    body = {"api_key": "k", "events": [{"event_type": "e", "user_id": "uuuuu", "time": 1.0,
                                        "platform": "Web", "groups": {"a": [1, {"b": None}]}},
                                       {"event_type": "e", "device_id": "ddddd",
                                        "time": 1700000000000, "library": "x"}]}
    raw = orjson.dumps(body)
    kind, value = outcome(amplitude.BODY.validate_json, raw)
    assert kind == "value"
    assert value["events"][0]["platform"] == "Web"
    assert value["events"][0]["time"] == 1
    assert value["events"][1]["library"] == "x"
    assert_same(amplitude.BODY, raw)


def test_posthog_events_validated_one_by_one_as_pydantic_does() -> None:
    for item in ({"event": "x", "distinct_id": "u", "timestamp": "2024-01-01T00:00:00Z",
                  "$set": {"a": 1}}, {"event": ""}, {"event": "x", "uuid": "u" * 257},
                 {"event": "x", "properties": []}):
        assert comparable(outcome(posthog.EVENT.validate_python, item)) == comparable(
            outcome(posthog.EVENT.adapter.validate_python, item))


@pytest.mark.parametrize(("raw", "limit", "expected"), [
    (b'[[["a"]]]', 3, True),
    (b'[[["a"]]]', 2, False),
    (b'{"a":[{"b":1},{"c":2}],"d":{}}', 3, True),
    (b'{"a":[{"b":1},{"c":2}],"d":{}}', 2, False),
    (b'["[[[["]', 5, True),   # brackets in a string may count; never too few
    (b'["[[[["]', 4, False),
    (b'{"events":[' + b'{"p":{"n":1}},' * 499 + b'{"p":{"n":1}}]}', 4, True),
])
def test_shallow_never_passes_a_deeper_body(raw: bytes, limit: int, expected: bool) -> None:
    assert shallow(raw, limit) is expected
