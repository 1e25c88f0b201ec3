"""The server's one pass per event (trackd/server/validation.py's EventDocuments): the
short way for properties stored as sent gives what the full rules give, or steps aside;
every event of a request shares the request's clock, door and request id; a batch's
paths are made only when read and read as the list they stand for.

What a request is refused for, and what is stored, is asserted over gRPC in
tests/server/test_validation.py and test_properties_json.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from trackd.server.errors import FieldViolation
from trackd.server.properties import json_properties, properties_as_sent
from trackd.server.validation import EventDocuments, EventPaths
from trackd.v1 import tracking_pb2
from trackd.wire.limits import (
    MAX_PROPERTIES_BYTES,
    MAX_PROPERTY_DEPTH,
    MAX_PROPERTY_KEY_CHARS,
    MAX_PROPERTY_KEYS,
)

AS_SENT = [
    b"{}",
    b'{"plan":"trial","source":"organic","n":7}',
    b'{"price":19.99,"ok":true,"none":null,"big":9007199254740992}',
    b'{"cart":{"items":[{"sku":"s1","q":1},[1,"x",null]]},"a.b":"dots are characters"}',
    b'{"' + b"k" * MAX_PROPERTY_KEY_CHARS + b'":1}',
    orjson.dumps({f"k{i}": i for i in range(MAX_PROPERTY_KEYS)}),
    # The properties object is level 1: arrays down to the last level allowed.
    b'{"deep":' + b"[" * (MAX_PROPERTY_DEPTH - 1) + b"1" + b"]" * (MAX_PROPERTY_DEPTH - 1) + b"}",
]
NOT_AS_SENT = [
    b'{"a": 1}',  # not compact: stored the same, found by the full rules
    b'{"n":3.0}',  # an integral double: stored as the integer 3
    b'{"n":9007199254740993}',  # beyond 2^53: stored as the nearest double
    b'{"a":1,"a":2}',  # a key twice
    b'{"$set":1}',
    b'{"":1}',
    b'{"a\\u0000b":1}',
    b'{"' + b"k" * (MAX_PROPERTY_KEY_CHARS + 1) + b'":1}',
    orjson.dumps({f"k{i}": i for i in range(MAX_PROPERTY_KEYS + 1)}),
    orjson.dumps({"s": "x" * MAX_PROPERTIES_BYTES}),
    b'{"deep":' + b"[" * MAX_PROPERTY_DEPTH + b"1" + b"]" * MAX_PROPERTY_DEPTH + b"}",  # too deep
    b"[1]",
    b'{"a":',
    b'{"a":"\xff"}',
]


@pytest.mark.parametrize("raw", AS_SENT)
def test_properties_stored_as_sent_are_what_the_full_rules_store(raw: bytes) -> None:
    violations: list[FieldViolation] = []
    assert properties_as_sent(raw) == json_properties(raw, "event", violations)
    assert violations == []


@pytest.mark.parametrize("raw", NOT_AS_SENT)
def test_anything_else_is_left_to_the_full_rules(raw: bytes) -> None:
    assert properties_as_sent(raw) is None


def test_every_event_of_a_request_shares_its_clock_door_and_request_id() -> None:
    received_at = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)
    builder = EventDocuments("acme", scope="BatchTrack", idempotency_key="k-1",
                             via="segment", request_id="req-1", received_at=received_at)
    events = [tracking_pb2.Event(name="signup", external_user_id="u1", event_id="e1",
                                 properties_json=b'{"plan":"trial"}'),
              tracking_pb2.Event(name="login", anonymous_id="a1")]
    first, second = builder.documents(events)
    assert builder.violations == []
    assert first == {"project_id": "acme", "event_id": "e1", "name": "signup",
                     "user_id": "u1", "anonymous_id": None, "timestamp": received_at,
                     "received_at": received_at, "properties": {"plan": "trial"},
                     "via": "segment", "request_id": "req-1"}
    again = EventDocuments("acme", scope="BatchTrack", idempotency_key="k-1", via="segment",
                           request_id="req-2").documents(events)
    # An event sent without an id under an idempotency key gets the same id on retry.
    assert second["event_id"] == again[1]["event_id"] != ""
    assert (second["via"], second["request_id"], second["user_id"]) == \
        ("segment", "req-1", None)


def test_violations_name_each_events_path_in_request_order() -> None:
    builder = EventDocuments("acme", scope="BatchTrack", idempotency_key="", via="grpc",
                             request_id="")
    builder.documents([tracking_pb2.Event(name="ok", external_user_id="u"),
                       tracking_pb2.Event(external_user_id="u", properties_json=b'{"$a":1}'),
                       tracking_pb2.Event(name="x")])
    assert builder.violations == [
        FieldViolation("events[1].name", "is required"),
        FieldViolation("events[1].properties.$a", "property keys must be non-empty, not "
                       "start with '$' and not contain NUL"),
        FieldViolation("events[2].external_user_id", "is required when anonymous_id is empty"),
    ]
    single = EventDocuments("acme", scope="TrackEvent", idempotency_key="", via="grpc",
                            request_id="")
    single.documents([tracking_pb2.Event(name="x")], single=True)
    assert single.violations == [
        FieldViolation("event.external_user_id", "is required when anonymous_id is empty")]


def test_event_paths_read_as_the_list_they_stand_for() -> None:
    paths = EventPaths(3)
    listed = ["events[0]", "events[1]", "events[2]"]
    assert len(paths) == 3
    assert list(paths) == listed
    assert [paths[i] for i in (0, 2, -1, -3)] == [listed[i] for i in (0, 2, -1, -3)]
    assert paths[1:] == listed[1:]
    with pytest.raises(IndexError):
        paths[3]
    with pytest.raises(IndexError):
        paths[-4]
