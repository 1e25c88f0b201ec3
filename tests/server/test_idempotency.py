"""Idempotency keys over gRPC: replay, reuse, scopes, projects, expiry, concurrency.

A replay is told apart from a deduplicated write by the pipeline's counters: a replay
never reaches the pipeline, so ``flushes`` does not move.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from tests.helpers import KeyFactory, stored_events
from tests.server.helpers import (
    DB_DOWN_WRITE,
    auth,
    batch,
    decode,
    event,
    invalid,
    rpc_error,
    track,
)
from trackd.server.app import TrackdServer
from trackd.server.idempotency import fingerprint
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub
RPCS = ["TrackEvent", "BatchTrack"]
KEY = "5f0c6a56-3d5e-4a7a-9a1e-2f5d1c0b9e77"
REUSE = invalid("idempotency_key", "was already used with a different request",
                reason="IDEMPOTENCY_KEY_REUSE")
BAD_KEY = invalid("idempotency_key", "must be 1 to 255 printable characters")


def request(rpc: str, key: str, *events: tracking_pb2.Event) -> Any:
    if rpc == "TrackEvent":
        (only,) = events
        return track(only, key)
    return batch(list(events), key)


def send(tracking: Stub, rpc: str, req: Any, key: str) -> Any:
    method = tracking.TrackEvent if rpc == "TrackEvent" else tracking.BatchTrack
    return method(req, metadata=auth(key))


async def records(store: Store) -> list[dict[str, Any]]:
    cursor = store.db["idempotency_keys"].find({}, {"_id": 0, "project_id": 1, "scope": 1,
                                                    "key": 1, "state": 1})
    return [doc async for doc in cursor]


@pytest.mark.parametrize("rpc", RPCS)
async def test_same_key_and_request_replays_the_response_and_writes_once(
    tracking: Stub, server: TrackdServer, store: Store, api_key: str, rpc: str
) -> None:
    req = request(rpc, KEY, event(event_id="evt-1", properties={"n": 1}))

    first = await send(tracking, rpc, req, api_key)
    second = await send(tracking, rpc, req, api_key)

    assert second == first
    if rpc == "TrackEvent":
        assert first == tracking_pb2.TrackEventResponse(event_id="evt-1", duplicate=False)
    else:
        assert first == tracking_pb2.BatchTrackResponse(event_ids=["evt-1"], stored_count=1)
    assert [d["event_id"] for d in await stored_events(store)] == ["evt-1"]
    assert (server.pipeline.stats.flushes, server.pipeline.stats.events_written) == (1, 1)
    assert await records(store) == [
        {"project_id": "acme", "scope": rpc, "key": KEY, "state": "completed"}]


@pytest.mark.parametrize("rpc", RPCS)
async def test_generated_ids_derive_from_the_key_so_a_retry_writes_nothing(
    tracking: Stub, server: TrackdServer, store: Store, api_key: str, rpc: str
) -> None:
    events = [event("a")] if rpc == "TrackEvent" else [event("a"), event("b"), event("c")]
    req = request(rpc, KEY, *events)

    first = await send(tracking, rpc, req, api_key)
    second = await send(tracking, rpc, req, api_key)

    assert second == first
    ids = [first.event_id] if rpc == "TrackEvent" else list(first.event_ids)
    assert len(set(ids)) == len(events)
    assert all(uuid.UUID(i).version == 5 for i in ids)
    docs = await stored_events(store)
    assert sorted(d["event_id"] for d in docs) == sorted(ids)
    assert server.pipeline.stats.flushes == 1


@pytest.mark.parametrize("rpc", RPCS)
async def test_same_key_with_a_different_request_is_rejected(
    tracking: Stub, store: Store, api_key: str, rpc: str
) -> None:
    await send(tracking, rpc, request(rpc, KEY, event(event_id="first")), api_key)

    error = await rpc_error(send(tracking, rpc, request(rpc, KEY, event(event_id="second")),
                                 api_key))

    assert error == REUSE
    assert [d["event_id"] for d in await stored_events(store)] == ["first"]


async def test_the_same_key_on_track_event_and_batch_track_is_two_keys(
    tracking: Stub, store: Store, api_key: str
) -> None:
    single = await tracking.TrackEvent(track(event("x"), KEY), metadata=auth(api_key))
    many = await tracking.BatchTrack(batch([event("x")], KEY), metadata=auth(api_key))
    single_again = await tracking.TrackEvent(track(event("x"), KEY), metadata=auth(api_key))

    assert single.duplicate is False
    assert (many.stored_count, many.duplicate_count) == (1, 0)
    assert single.event_id != many.event_ids[0]
    assert single_again == single
    assert sorted(d["event_id"] for d in await stored_events(store)) == sorted(
        [single.event_id, many.event_ids[0]])
    assert sorted(r["scope"] for r in await records(store)) == ["BatchTrack", "TrackEvent"]


async def test_keys_are_per_project(tracking: Stub, store: Store, make_key: KeyFactory) -> None:
    key_a, key_b = await make_key("project-a"), await make_key("project-b")

    in_a = await tracking.TrackEvent(track(event(event_id="a-1"), KEY), metadata=auth(key_a))
    in_b = await tracking.TrackEvent(track(event(event_id="b-1"), KEY), metadata=auth(key_b))
    derived_a = await tracking.BatchTrack(batch([event()], KEY), metadata=auth(key_a))
    derived_b = await tracking.BatchTrack(batch([event()], KEY), metadata=auth(key_b))

    assert in_a == tracking_pb2.TrackEventResponse(event_id="a-1", duplicate=False)
    assert in_b == tracking_pb2.TrackEventResponse(event_id="b-1", duplicate=False)
    assert derived_a.stored_count == derived_b.stored_count == 1
    assert sorted(d["event_id"] for d in await stored_events(store, "project-a")) == sorted(
        ["a-1", derived_a.event_ids[0]])
    assert sorted(d["event_id"] for d in await stored_events(store, "project-b")) == sorted(
        ["b-1", derived_b.event_ids[0]])


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("key", [
    pytest.param("k" * 256, id="256-chars"),
    pytest.param("tab\there", id="tab"),
    pytest.param("line\n", id="newline"),
])
async def test_a_malformed_key_is_invalid_argument(
    tracking: Stub, store: Store, api_key: str, rpc: str, key: str
) -> None:
    error = await rpc_error(send(tracking, rpc, request(rpc, key, event(event_id="e")), api_key))

    assert error == BAD_KEY
    assert await stored_events(store) == []
    assert await records(store) == []


@pytest.mark.parametrize("key", ["k" * 255, "x", "not a uuid, but printable: ÿ"])
async def test_any_printable_key_of_1_to_255_characters_is_accepted(
    tracking: Stub, store: Store, api_key: str, key: str
) -> None:
    response = await tracking.TrackEvent(track(event(event_id="e"), key), metadata=auth(api_key))

    assert response == tracking_pb2.TrackEventResponse(event_id="e", duplicate=False)
    assert await records(store) == [
        {"project_id": "acme", "scope": "TrackEvent", "key": key, "state": "completed"}]


async def test_property_order_does_not_make_a_different_request(
    tracking: Stub, server: TrackdServer, store: Store, api_key: str
) -> None:
    one = track(event(properties={"a": 1, "b": {"x": 1, "y": 2}}), KEY)
    other = track(event(properties={"b": {"y": 2, "x": 1}, "a": 1}), KEY)

    first = await tracking.TrackEvent(one, metadata=auth(api_key))
    second = await tracking.TrackEvent(other, metadata=auth(api_key))

    assert second == first
    assert len(await stored_events(store)) == 1
    assert server.pipeline.stats.flushes == 1


async def test_a_rejected_request_does_not_use_up_the_key(
    tracking: Stub, store: Store, api_key: str
) -> None:
    error = await rpc_error(tracking.TrackEvent(track(event(user=""), KEY),
                                                metadata=auth(api_key)))
    assert error == invalid("event.external_user_id", "is required when anonymous_id is empty")
    assert await records(store) == []

    response = await tracking.TrackEvent(track(event(event_id="ok"), KEY), metadata=auth(api_key))

    assert response == tracking_pb2.TrackEventResponse(event_id="ok", duplicate=False)
    assert [d["event_id"] for d in await stored_events(store)] == ["ok"]


async def test_a_key_is_forgotten_after_24_hours(
    tracking: Stub, store: Store, api_key: str
) -> None:
    await tracking.TrackEvent(track(event(event_id="day-1"), KEY), metadata=auth(api_key))
    # Age the record past 24 hours (the TTL monitor may not have reaped it yet).
    aged = await store.db["idempotency_keys"].update_one(
        {"key": KEY}, {"$set": {"created_at": datetime.now(UTC) - timedelta(hours=25)}})
    assert aged.modified_count == 1

    response = await tracking.TrackEvent(track(event(event_id="day-2"), KEY),
                                         metadata=auth(api_key))

    assert response == tracking_pb2.TrackEventResponse(event_id="day-2", duplicate=False)
    assert [d["event_id"] for d in await stored_events(store)] == ["day-1", "day-2"]
    replay = await tracking.TrackEvent(track(event(event_id="day-2"), KEY),
                                       metadata=auth(api_key))
    assert replay == response


async def test_a_key_abandoned_by_a_crashed_request_is_taken_over(
    tracking: Stub, store: Store, api_key: str
) -> None:
    req = track(event(), KEY)
    # What a process that died mid-request leaves behind: a pending record whose lease
    # has run out, and no event.
    await store.idempotency.reserve("acme", "TrackEvent", KEY, fingerprint(req),
                                    datetime.now(UTC), timedelta(0))

    response = await tracking.TrackEvent(req, metadata=auth(api_key))

    assert response.duplicate is False
    assert [d["event_id"] for d in await stored_events(store)] == [response.event_id]
    assert await records(store) == [
        {"project_id": "acme", "scope": "TrackEvent", "key": KEY, "state": "completed"}]


async def test_a_key_held_by_an_in_flight_request_rejects_a_different_request_at_once(
    tracking: Stub, store: Store, api_key: str
) -> None:
    await store.idempotency.reserve("acme", "TrackEvent", KEY,
                                    fingerprint(track(event("in-flight"), KEY)),
                                    datetime.now(UTC), timedelta(hours=1))

    error = await rpc_error(tracking.TrackEvent(track(event("other"), KEY),
                                                metadata=auth(api_key)))

    assert error == REUSE
    assert await stored_events(store) == []


async def test_concurrent_identical_requests_write_once_and_answer_alike(
    tracking: Stub, server: TrackdServer, store: Store, api_key: str
) -> None:
    req = batch([event("a"), event("b"), event("c")], KEY)

    responses = await asyncio.gather(
        *(tracking.BatchTrack(req, metadata=auth(api_key)) for _ in range(8)))

    assert all(r == responses[0] for r in responses)
    assert (responses[0].stored_count, responses[0].duplicate_count) == (3, 0)
    assert sorted(d["event_id"] for d in await stored_events(store)) == sorted(
        responses[0].event_ids)
    assert (server.pipeline.stats.flushes, server.pipeline.stats.events_written) == (1, 3)


async def test_concurrent_different_requests_with_one_key_let_exactly_one_through(
    tracking: Stub, store: Store, api_key: str
) -> None:
    calls = [tracking.TrackEvent(track(event(event_id=f"e-{i}"), KEY), metadata=auth(api_key))
             for i in range(6)]

    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    succeeded = [o for o in outcomes if isinstance(o, tracking_pb2.TrackEventResponse)]
    failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(succeeded) == 1
    assert len(failed) == 5
    assert all(decode(f) == REUSE for f in failed)
    assert [d["event_id"] for d in await stored_events(store)] == [succeeded[0].event_id]


async def test_a_request_whose_write_failed_can_be_retried_with_its_key(
    events_down: tuple[TrackdServer, Stub], tracking: Stub, store: Store, api_key: str
) -> None:
    _, broken = events_down
    req = batch([event("a"), event("b")], KEY)

    assert await rpc_error(broken.BatchTrack(req, metadata=auth(api_key))) == DB_DOWN_WRITE
    assert await records(store) == []  # the failed request released its key
    assert await stored_events(store) == []

    retried = await tracking.BatchTrack(req, metadata=auth(api_key))

    assert (retried.stored_count, retried.duplicate_count) == (2, 0)
    assert sorted(d["event_id"] for d in await stored_events(store)) == sorted(
        retried.event_ids)
    assert await tracking.BatchTrack(req, metadata=auth(api_key)) == retried
