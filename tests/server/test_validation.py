"""Limits and validation over gRPC: the exact field path, the exact status, nothing stored.

Every rule is checked on both RPCs: alone in a TrackEvent (path ``event.…``) and as
``events[3]`` of an otherwise valid five-event BatchTrack (path ``events[3].…``), where
one bad event must reject the whole batch. Every event case runs with its properties in
both encodings, the Struct ``properties`` and the JSON ``properties_json``
(tests/server/test_properties_json.py has what only JSON can get wrong), with the same
result.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from tests.helpers import stored_events
from tests.server.helpers import (
    DOMAIN,
    RichError,
    auth,
    batch,
    encoded,
    event,
    invalid,
    rpc_error,
    stored_form,
    struct_plain,
    track,
    typed,
)
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub
RPCS = ["TrackEvent", "BatchTrack"]
ENCODINGS = ["struct", "json"]
MB = 1024 * 1024
KEY_RULE = "property keys must be non-empty, not start with '$' and not contain NUL"
DEPTH_RULE = "properties may nest at most 32 levels deep"


def nested(levels: int) -> dict[str, Any]:
    """Properties nested ``levels`` objects deep, the properties object itself being 1."""
    inner: dict[str, Any] = {}
    for _ in range(levels - 1):
        inner = {"a": inner}
    return inner


def nested_lists(levels: int) -> dict[str, Any]:
    """Properties whose key ``a`` holds lists nested so the innermost is at ``levels``."""
    inner: list[Any] = []
    for _ in range(levels - 2):
        inner = [inner]
    return {"a": inner}


def context(**fields: str) -> tracking_pb2.EventContext:
    return tracking_pb2.EventContext(**fields)


async def send(tracking: Stub, key: str, rpc: str, bad: tracking_pb2.Event) -> tuple[Any, str]:
    """Send ``bad`` through ``rpc``; return the pending call and the path prefix it gets."""
    if rpc == "TrackEvent":
        return tracking.TrackEvent(track(bad), metadata=auth(key)), "event"
    events = [event(event_id=f"ok-{i}") for i in range(5)]
    events[3] = bad
    return tracking.BatchTrack(batch(events), metadata=auth(key)), "events[3]"


INVALID = [
    pytest.param(event(name=""), ".name", "is required", id="name-missing"),
    pytest.param(event(name="n" * 513), ".name", "must be at most 512 characters",
                 id="name-513"),
    pytest.param(event(user=""), ".external_user_id", "is required when anonymous_id is empty",
                 id="no-user-ids"),
    pytest.param(event(event_id="e" * 257), ".event_id", "must be at most 256 characters",
                 id="event-id-257"),
    pytest.param(event(user="u" * 257), ".external_user_id", "must be at most 256 characters",
                 id="user-id-257"),
    pytest.param(event(user="", anonymous_id="a" * 257), ".anonymous_id",
                 "must be at most 256 characters", id="anonymous-id-257"),
    pytest.param(event(context=context(namespace="n" * 65)), ".context.namespace",
                 "must be at most 64 characters", id="namespace-65"),
    pytest.param(event(context=context(source="s" * 65)), ".context.source",
                 "must be at most 64 characters", id="source-65"),
    pytest.param(event(context=context(website_id="w" * 65)), ".context.website_id",
                 "must be at most 64 characters", id="website-id-65"),
    pytest.param(event(context=context(session_id="s" * 257)), ".context.session_id",
                 "must be at most 256 characters", id="session-id-257"),
    pytest.param(event(properties={f"k{i}": i for i in range(101)}), ".properties",
                 "at most 100 property keys are allowed", id="101-property-keys"),
    pytest.param(event(properties={"blob": "x" * (MB + 1)}), ".properties",
                 f"must be at most {MB} bytes as JSON", id="properties-over-1MB"),
    pytest.param(event(properties=nested(33)), ".properties" + ".a" * 32, DEPTH_RULE,
                 id="objects-33-deep"),
    pytest.param(event(properties=nested_lists(33)), ".properties.a" + "[0]" * 31, DEPTH_RULE,
                 id="lists-33-deep"),
    pytest.param(event(properties={"$set": {"plan": "pro"}}), ".properties.$set", KEY_RULE,
                 id="dollar-key"),
    pytest.param(event(properties={"order": {"items": [{"$inc": 1}]}}),
                 ".properties.order.items[0].$inc", KEY_RULE, id="nested-dollar-key"),
    pytest.param(event(properties={"": 1}), ".properties", KEY_RULE, id="empty-key"),
    pytest.param(event(properties={"a\x00b": 1}), ".properties.a\x00b", KEY_RULE,
                 id="nul-in-key"),
    pytest.param(event(properties={"k" * 257: 1}), ".properties",
                 "property key longer than 256 characters", id="key-257"),
    pytest.param(event(timestamp=timestamp_pb2.Timestamp(seconds=253_402_300_800)),
                 ".timestamp", "is out of range", id="timestamp-after-9999"),
    pytest.param(event(timestamp=timestamp_pb2.Timestamp(seconds=10, nanos=-1)),
                 ".timestamp", "is out of range", id="timestamp-negative-nanos"),
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize(("bad", "suffix", "description"), INVALID)
async def test_invalid_event_is_rejected_with_its_field_path(
    tracking: Stub, store: Store, api_key: str, rpc: str, encoding: str,
    bad: tracking_pb2.Event, suffix: str, description: str,
) -> None:
    call, prefix = await send(tracking, api_key, rpc, encoded(bad, encoding))

    assert await rpc_error(call) == invalid(prefix + suffix, description)
    assert await stored_events(store) == []


# JSON has no NaN or Infinity (test_properties_json.py sends them): Struct only.
NON_FINITE = [
    pytest.param(event(properties={"score": float("nan")}), ".properties.score",
                 "numbers must be finite", id="nan"),
    pytest.param(event(properties={"xs": [1, float("-inf")]}), ".properties.xs[1]",
                 "numbers must be finite", id="minus-infinity-in-list"),
]


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize(("bad", "suffix", "description"), NON_FINITE)
async def test_non_finite_number_in_a_struct_is_rejected_with_its_field_path(
    tracking: Stub, store: Store, api_key: str, rpc: str,
    bad: tracking_pb2.Event, suffix: str, description: str,
) -> None:
    call, prefix = await send(tracking, api_key, rpc, bad)

    assert await rpc_error(call) == invalid(prefix + suffix, description)
    assert await stored_events(store) == []


VALID_AT_THE_LIMIT = [
    pytest.param(event(name="n" * 512), id="name-512"),
    pytest.param(event(name="é" * 512), id="name-512-non-ascii-characters"),
    pytest.param(event(event_id="e" * 256, user="u" * 256, anonymous_id="a" * 256),
                 id="ids-256"),
    pytest.param(event(user="", anonymous_id="anon-1"), id="anonymous-only"),
    pytest.param(event(context=context(namespace="n" * 64, source="s" * 64,
                                       website_id="w" * 64, session_id="s" * 256)),
                 id="context-at-limits"),
    pytest.param(event(properties={f"k{i}": i for i in range(100)}), id="100-property-keys"),
    pytest.param(event(properties={"blob": "x" * (MB - 100)}), id="properties-under-1MB"),
    pytest.param(event(properties=nested(32)), id="objects-32-deep"),
    pytest.param(event(properties=nested_lists(32)), id="lists-32-deep"),
    pytest.param(event(properties={"k" * 256: 1, "a.b": 2, "a$b": 3}), id="key-256-dot-dollar"),
    pytest.param(event(timestamp=timestamp_pb2.Timestamp(seconds=253_402_300_799)),
                 id="timestamp-9999-12-31"),
]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("good", VALID_AT_THE_LIMIT)
async def test_event_at_the_limits_is_stored(
    tracking: Stub, store: Store, api_key: str, rpc: str, encoding: str,
    good: tracking_pb2.Event,
) -> None:
    probe = tracking_pb2.Event()
    probe.CopyFrom(encoded(good, encoding))
    if not probe.event_id:
        probe.event_id = "at-limit"
    call, _ = await send(tracking, api_key, rpc, probe)

    await call

    stored = {doc["event_id"]: doc for doc in await stored_events(store)}
    expected_ids = {probe.event_id} | (set() if rpc == "TrackEvent"
                                       else {"ok-0", "ok-1", "ok-2", "ok-4"})
    assert set(stored) == expected_ids
    doc = stored[probe.event_id]
    assert doc["name"] == probe.name
    assert doc["user_id"] == (probe.external_user_id or None)
    assert doc["anonymous_id"] == (probe.anonymous_id or None)
    assert typed(doc["properties"]) == typed(stored_form(struct_plain(good.properties)))


async def test_every_violation_of_a_batch_is_reported_in_order(
    tracking: Stub, store: Store, api_key: str
) -> None:
    events = [event(event_id=f"ok-{i}") for i in range(6)]
    events[1] = event(name="", event_id="bad-1")
    events[4] = event(user="", properties={"$x": 1}, event_id="bad-4")

    error = await rpc_error(tracking.BatchTrack(batch(events), metadata=auth(api_key)))

    assert error == invalid("events[1].name", "is required", more=(
        ("events[4].external_user_id", "is required when anonymous_id is empty"),
        ("events[4].properties.$x", KEY_RULE),
    ))
    assert await stored_events(store) == []


# Past ~33 levels protobuf's decoder (100 message levels) gives up before validation
# can name a field: the call is still the client's INVALID_ARGUMENT, not UNKNOWN.
UNDECODABLE = ("the request could not be decoded: it is malformed or nested deeper than "
               "protobuf allows (properties nest at most 32 levels)")


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("levels", [34, 40, 200])
async def test_properties_nested_far_too_deep_are_invalid_argument(
    tracking: Stub, store: Store, api_key: str, rpc: str, levels: int
) -> None:
    call, _ = await send(tracking, api_key, rpc, event(properties=nested(levels)))

    error = await rpc_error(call)

    assert error == RichError(
        grpc.StatusCode.INVALID_ARGUMENT, UNDECODABLE, violations=(("", UNDECODABLE),),
        error_info=("MALFORMED_REQUEST", DOMAIN, ()), detail_types=("BadRequest", "ErrorInfo"))
    assert await stored_events(store) == []


# The proto documents the properties limit as "1 MB serialized as JSON"; the server
# measures the protobuf encoding, which differs both ways (a zero costs 11 bytes in a
# ListValue and 2 in JSON; a '"' costs 1 byte in protobuf and 2 in JSON).
ZEROS = {"xs": [0] * 100_000}
QUOTES = {"q": '"' * 600_000}


def test_the_json_size_cases_are_what_they_claim() -> None:
    assert len(json.dumps(ZEROS, separators=(",", ":"))) < MB // 5
    assert event(properties=ZEROS).properties.ByteSize() > MB
    assert len(json.dumps(QUOTES, separators=(",", ":"))) > MB
    assert event(properties=QUOTES).properties.ByteSize() < MB


async def test_properties_of_200kb_json_are_accepted(
    tracking: Stub, store: Store, api_key: str
) -> None:
    response = await tracking.TrackEvent(track(event(event_id="zeros", properties=ZEROS)),
                                         metadata=auth(api_key))

    assert response == tracking_pb2.TrackEventResponse(event_id="zeros", duplicate=False)
    (doc,) = await stored_events(store)
    assert doc["properties"] == ZEROS


async def test_properties_of_1_2mb_json_are_rejected(
    tracking: Stub, store: Store, api_key: str
) -> None:
    error = await rpc_error(tracking.TrackEvent(track(event(properties=QUOTES)),
                                                metadata=auth(api_key)))

    assert error == invalid("event.properties", f"must be at most {MB} bytes as JSON")
    assert await stored_events(store) == []
