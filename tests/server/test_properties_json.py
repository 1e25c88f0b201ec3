"""Event.properties_json over gRPC: a client may send an event's properties as a Struct or
as JSON bytes, never both; both store the same document; and what only JSON can get
wrong (not JSON, not an object, not UTF-8, NaN, duplicate keys) is INVALID_ARGUMENT
naming ``properties_json``, with nothing stored.

The rules both encodings share run through both in tests/server/test_validation.py.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from google.protobuf import timestamp_pb2

from tests.helpers import stored_events
from tests.server.helpers import (
    as_json,
    auth,
    batch,
    event,
    invalid,
    rpc_error,
    track,
    typed,
)
from tests.server.test_validation import DEPTH_RULE, RPCS, send
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub
NOT_JSON = "must be one UTF-8 JSON object (no NaN or Infinity): "
BOTH = "must not be set together with properties: set at most one of them"


def raw(properties_json: bytes, **fields: Any) -> tracking_pb2.Event:
    ev = event(**fields)
    ev.properties_json = properties_json
    return ev


def deep_json(levels: int) -> bytes:
    """A JSON object nested ``levels`` objects deep, written without a recursive encoder."""
    return b'{"a":' * (levels - 1) + b"{}" + b"}" * (levels - 1)


NOT_ACCEPTED = [
    pytest.param(b'{"a":', ".properties_json",
                 NOT_JSON + "unexpected end of data: line 1 column 6 (char 5)", id="truncated"),
    pytest.param(b"", None, None, id="empty-is-unset"),
    pytest.param(b"[1]", ".properties_json", "must be a JSON object, not an array", id="array"),
    pytest.param(b'"s"', ".properties_json", "must be a JSON object, not a string", id="string"),
    pytest.param(b"3", ".properties_json", "must be a JSON object, not a number", id="number"),
    pytest.param(b"true", ".properties_json", "must be a JSON object, not a boolean",
                 id="boolean"),
    pytest.param(b"null", ".properties_json", "must be a JSON object, not null", id="null"),
    pytest.param(b'{"a":"\xff"}', ".properties_json",
                 NOT_JSON + "str is not valid UTF-8: surrogates not allowed: line 1 column 1 "
                 "(char 0)", id="invalid-utf-8"),
    pytest.param(b'{"a":"\\ud800"}', ".properties_json",
                 NOT_JSON + "no low surrogate in string: line 1 column 7 (char 6)",
                 id="lone-surrogate"),
    pytest.param(b'{"score":NaN}', ".properties_json",
                 NOT_JSON + "unexpected character, expected a JSON value: line 1 column 10 "
                 "(char 9)", id="nan"),
    pytest.param(b'{"xs":[1,-Infinity]}', ".properties_json",
                 NOT_JSON + "no digit after sign: line 1 column 11 (char 10)",
                 id="minus-infinity"),
    pytest.param(b'{"x":1e400}', ".properties_json",
                 NOT_JSON + "number is infinity when parsed as double: line 1 column 6 (char 5)",
                 id="overflowing-number"),
    pytest.param(b'{"a":1,"a":2}', ".properties_json",
                 "has the key 'a' twice in one object (JSON object keys must be unique)",
                 id="duplicate-key"),
    pytest.param(b'{ "a": 1, "a": 1 }', ".properties_json",
                 "has the key 'a' twice in one object (JSON object keys must be unique)",
                 id="duplicate-key-same-value-spaced"),
    pytest.param(b'{"o":{"b":[{"c":1,"c":2}]}}', ".properties_json",
                 "has the key 'c' twice in one object (JSON object keys must be unique)",
                 id="nested-duplicate-key"),
    pytest.param(b'{"\\u0061":1,"a":2}', ".properties_json",
                 "has the key 'a' twice in one object (JSON object keys must be unique)",
                 id="duplicate-key-escaped"),
    # Where protobuf could not even decode a Struct this deep, the JSON's own depth is
    # the server's rule, naming the field (test_validation.py: far too deep as a Struct).
    pytest.param(deep_json(40), ".properties" + ".a" * 32, DEPTH_RULE, id="objects-40-deep"),
    pytest.param(deep_json(1000), ".properties" + ".a" * 32, DEPTH_RULE,
                 id="objects-1000-deep"),
    pytest.param(deep_json(2000), ".properties_json",
                 NOT_JSON + "depth limit exceeded: line 1 column 5122 (char 5121)",
                 id="objects-2000-deep"),
]


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize(("properties_json", "suffix", "description"), NOT_ACCEPTED)
async def test_json_the_struct_could_not_be_is_invalid_argument(
    tracking: Stub, store: Store, api_key: str, rpc: str,
    properties_json: bytes, suffix: str | None, description: str | None,
) -> None:
    call, prefix = await send(tracking, api_key, rpc, raw(properties_json, event_id="probe"))

    if suffix is None:  # empty bytes: no properties, as a missing Struct
        await call
        docs = {doc["event_id"]: doc["properties"] for doc in await stored_events(store)}
        assert docs["probe"] == {}
        return
    assert description is not None
    assert await rpc_error(call) == invalid(prefix + suffix, description)
    assert await stored_events(store) == []


@pytest.mark.parametrize("rpc", RPCS)
async def test_properties_and_properties_json_together_are_invalid_argument(
    tracking: Stub, store: Store, api_key: str, rpc: str
) -> None:
    both = event(properties={"a": 1})
    both.properties_json = b'{"a":1}'

    call, prefix = await send(tracking, api_key, rpc, both)

    assert await rpc_error(call) == invalid(f"{prefix}.properties_json", BOTH)
    assert await stored_events(store) == []


# Every kind of value, numbers at the edges of a double's exact integers included.
PROPERTIES: dict[str, Any] = {
    "feature": "export", "count": 3, "ratio": 0.25, "ok": True, "no": False, "none": None,
    "whole": 3.0, "neg_zero": -0.0, "max_exact": 2**53, "min_exact": -(2**53),
    "beyond": 2**53 + 1, "u64": 2**64 - 1, "past_u64": 2**70, "huge": 1e300, "tiny": 5e-324,
    "list": [1, 2.0, "x", [], {}, [None, [True]]], "empty": {},
    "nested": {"a": {"b": [{"c": "é☃𝄞 \"quoted\" \\ \n"}]}}, "a.b": 1, "a$b": 2, "k" * 256: 1,
}


def encodings(name: str) -> list[tracking_pb2.Event]:
    """The same event with PROPERTIES as a Struct, as JSON written from the Python values
    (integers stay integers, standard library), as orjson writes it (what the gateway
    sends, with spaces added) and as JSON written from the Struct's doubles."""
    when = timestamp_pb2.Timestamp(seconds=1_700_000_000)
    struct = event(name, event_id=f"{name}-struct", properties=PROPERTIES, timestamp=when)
    plain = raw(json.dumps(PROPERTIES).encode(), name=name, event_id=f"{name}-plain",
                timestamp=when)
    spaced = raw(orjson.dumps({k: v for k, v in PROPERTIES.items() if k != "past_u64"},
                              option=orjson.OPT_INDENT_2)[:-1] + b', "past_u64": '
                 + str(2**70).encode() + b"}", name=name, event_id=f"{name}-spaced",
                 timestamp=when)
    doubles = as_json(struct)
    doubles.event_id = f"{name}-doubles"
    return [struct, plain, spaced, doubles]


def comparable(doc: dict[str, Any]) -> Any:
    """A stored event minus what differs by request (its ids, its request's and its receive
    time)."""
    return typed({k: v for k, v in doc.items()
                  if k not in ("_id", "event_id", "received_at", "request_id")})


async def test_either_encoding_stores_the_same_document(
    tracking: Stub, store: Store, api_key: str
) -> None:
    singles = encodings("single")
    for ev in singles:
        response = await tracking.TrackEvent(track(ev), metadata=auth(api_key))
        assert response == tracking_pb2.TrackEventResponse(event_id=ev.event_id)
    batched = encodings("batched")
    response = await tracking.BatchTrack(batch(batched), metadata=auth(api_key))
    assert response == tracking_pb2.BatchTrackResponse(
        event_ids=[ev.event_id for ev in batched], stored_count=4)

    docs = {doc["event_id"]: doc for doc in await stored_events(store)}
    assert len(docs) == 8
    for name in ("single", "batched"):
        reference = comparable(docs[f"{name}-struct"])
        for kind in ("plain", "spaced", "doubles"):
            assert comparable(docs[f"{name}-{kind}"]) == reference, kind
    assert typed(docs["single-plain"]["properties"]) == typed({
        **PROPERTIES, "whole": 3, "neg_zero": 0, "beyond": 2**53, "u64": float(2**64),
        "past_u64": float(2**70), "list": [1, 2, "x", [], {}, [None, [True]]]})


async def test_properties_json_is_the_content_an_idempotency_key_compares(
    tracking: Stub, store: Store, api_key: str
) -> None:
    first = track(raw(b'{"a":1,"b":2}', event_id="idem"), "key-1")
    again = await tracking.TrackEvent(first, metadata=auth(api_key))
    assert again == await tracking.TrackEvent(first, metadata=auth(api_key))

    reordered = track(raw(b'{"b":2,"a":1}', event_id="idem"), "key-1")
    error = await rpc_error(tracking.TrackEvent(reordered, metadata=auth(api_key)))

    assert error == invalid("idempotency_key", "was already used with a different request",
                            reason="IDEMPOTENCY_KEY_REUSE")
    assert [doc["properties"] for doc in await stored_events(store)] == [{"a": 1, "b": 2}]
