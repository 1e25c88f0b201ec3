"""The write path under load and failure: group commit, the queue bound, a dead database.

Counts (flushes, events written), never times: the assertions hold on any machine.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import stored_events
from tests.server.helpers import (
    DB_DOWN_AUTH,
    DB_DOWN_WRITE,
    auth,
    batch,
    event,
    rpc_error,
    track,
    unavailable,
)
from trackd.server.app import TrackdServer
from trackd.storage import Store
from trackd.v1 import tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub
OVERLOADED = unavailable("trackd is overloaded: write queue is full (10 events); retry later")


async def test_100_concurrent_calls_are_group_committed(
    tracking: Stub, server: TrackdServer, store: Store, api_key: str
) -> None:
    calls = [tracking.TrackEvent(track(event(event_id=f"c-{i:03}", properties={"i": i})),
                                 metadata=auth(api_key)) for i in range(100)]

    responses = await asyncio.gather(*calls)

    assert [r.event_id for r in responses] == [f"c-{i:03}" for i in range(100)]
    assert not any(r.duplicate for r in responses)
    docs = await stored_events(store)
    assert sorted((d["event_id"], d["properties"]["i"]) for d in docs) == [
        (f"c-{i:03}", i) for i in range(100)]
    stats = server.pipeline.stats
    assert stats.events_written == 100
    assert stats.failed_flushes == 0
    assert 1 <= stats.flushes < 50


async def test_concurrent_batches_share_flushes(
    tracking: Stub, server: TrackdServer, store: Store, api_key: str
) -> None:
    calls = [tracking.BatchTrack(batch([event(event_id=f"b{b}-{i}") for i in range(25)]),
                                 metadata=auth(api_key)) for b in range(20)]

    responses = await asyncio.gather(*calls)

    assert all((r.stored_count, r.duplicate_count) == (25, 0) for r in responses)
    assert len(await stored_events(store)) == 500
    assert server.pipeline.stats.events_written == 500
    assert server.pipeline.stats.flushes < 20


async def test_a_batch_larger_than_the_write_queue_is_unavailable(
    tiny_queue: tuple[TrackdServer, Stub], store: Store, api_key: str
) -> None:
    srv, tracking = tiny_queue
    eleven = batch([event(event_id=f"e-{i}") for i in range(11)])

    assert await rpc_error(tracking.BatchTrack(eleven, metadata=auth(api_key))) == OVERLOADED
    assert await stored_events(store) == []
    assert srv.pipeline.stats.flushes == 0

    # The bound is exactly 10, and the rejected batch left nothing queued behind.
    ten = await tracking.BatchTrack(batch([event(event_id=f"t-{i}") for i in range(10)]),
                                    metadata=auth(api_key))
    assert (ten.stored_count, ten.duplicate_count) == (10, 0)
    assert sorted(d["event_id"] for d in await stored_events(store)) == sorted(
        f"t-{i}" for i in range(10))


@pytest.mark.parametrize("rpc", ["TrackEvent", "BatchTrack"])
@pytest.mark.parametrize("idempotency_key", ["", "key-1"])
async def test_database_unreachable_is_unavailable_with_retry_info(
    dead_db_tracking: Stub, api_key: str, rpc: str, idempotency_key: str
) -> None:
    # The key lookup is the first thing to need the database, so it is what fails.
    if rpc == "TrackEvent":
        call = dead_db_tracking.TrackEvent(track(event(), idempotency_key),
                                           metadata=auth(api_key))
    else:
        call = dead_db_tracking.BatchTrack(batch([event()], idempotency_key),
                                           metadata=auth(api_key))

    assert await rpc_error(call) == DB_DOWN_AUTH


@pytest.mark.parametrize("rpc", ["TrackEvent", "BatchTrack"])
async def test_events_collection_unreachable_is_unavailable_and_nothing_acknowledged(
    events_down: tuple[TrackdServer, Stub], store: Store, api_key: str, rpc: str
) -> None:
    srv, broken = events_down
    if rpc == "TrackEvent":
        call = broken.TrackEvent(track(event(event_id="lost")), metadata=auth(api_key))
    else:
        call = broken.BatchTrack(batch([event(event_id="lost")]), metadata=auth(api_key))

    assert await rpc_error(call) == DB_DOWN_WRITE
    assert await stored_events(store) == []
    assert (srv.pipeline.stats.flushes, srv.pipeline.stats.events_written,
            srv.pipeline.stats.failed_flushes) == (0, 0, 1)


async def test_while_the_database_is_down_every_write_is_unavailable(
    events_down: tuple[TrackdServer, Stub], store: Store, api_key: str
) -> None:
    srv, broken = events_down
    calls = [broken.TrackEvent(track(event(event_id=f"e-{i}")), metadata=auth(api_key))
             for i in range(10)]

    errors = [await rpc_error(call) for call in calls]

    assert errors == [DB_DOWN_WRITE] * 10
    assert await stored_events(store) == []
    assert srv.pipeline.stats.events_written == 0
    assert srv.pipeline.stats.failed_flushes >= 1



async def test_a_document_the_driver_cannot_encode_fails_its_request_instead_of_hanging(
    store: Store,
) -> None:
    from trackd.server.pipeline import WritePipeline
    from trackd.storage import StorageError

    pipeline = WritePipeline(store.events)
    pipeline.start()
    try:
        # The server never builds such a document; if it ever did, the request must fail
        # (bounded here by 30 s), not wait for its deadline.
        with pytest.raises(StorageError, match="could not be written"):
            await asyncio.wait_for(
                pipeline.write([{"project_id": "acme", "event_id": "bad", "x": object()}]), 30)
        assert await pipeline.write([{"project_id": "acme", "event_id": "good"}]) == [True]
    finally:
        await pipeline.close()
    assert [d["event_id"] for d in await stored_events(store)] == ["good"]
