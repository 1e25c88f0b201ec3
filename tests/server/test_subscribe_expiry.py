"""A cursor the database's change history no longer holds: Subscribe answers
FAILED_PRECONDITION with reason CURSOR_EXPIRED, and a webhook endpoint that far behind
records what it skipped. On a database of the test's own whose oplog keeps 100 changes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.durability.harness import Database
from tests.outbound.helpers import delivering, receiving
from tests.server.test_subscribe import _error, auth, since, take
from trackd.server.app import ServerConfig, TrackdServer, create_server
from trackd.server.auth import ALL_SCOPES, issue_key
from trackd.server.webhooks import Webhooks
from trackd.storage import Store, connect
from trackd.storage.event_feed import EventStream, HistoryLost
from trackd.v1 import tracking_pb2, tracking_pb2_grpc


@pytest.fixture
async def short_history(tmp_path: Path) -> AsyncIterator[Store]:
    database = Database(tmp_path, ("--oplog-max-entries", "100"))
    try:
        await database.start()
        store = await connect(database.uri, "trackd")
        yield store
        await store.close()
    finally:
        database.close()


@pytest.fixture
async def served(short_history: Store,
                 server_config: ServerConfig) -> AsyncIterator[TrackdServer]:
    srv = await create_server(short_history, dataclasses.replace(
        server_config, webhook_allow_private=True))
    yield srv
    await srv.stop(grace=1)


async def _bury(stub: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    """More than the oplog keeps (it is cut to size every 1000 changes)."""
    for _ in range(3):
        await stub.BatchTrack(tracking_pb2.BatchTrackRequest(events=[
            tracking_pb2.Event(name="filler", external_user_id="z") for _ in range(500)]),
            metadata=auth(key))


async def _lost(store: Store, position: dict[str, Any] | None) -> bool:
    stream = EventStream(store.db, "acme", after=position, wait_ms=10)
    try:
        await stream.open()
        await stream.next_batch(1)
    except HistoryLost:
        return True
    finally:
        await stream.close()
    return False


async def test_an_expired_cursor_is_failed_precondition(short_history: Store,
                                                        served: TrackdServer) -> None:
    key = (await issue_key(short_history.keys, "acme", ALL_SCOPES)).secret
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = tracking_pb2_grpc.TrackingServiceStub(channel)
        start = datetime.now(UTC) - timedelta(seconds=1)
        await stub.TrackEvent(tracking_pb2.TrackEventRequest(event=tracking_pb2.Event(
            name="first", external_user_id="u")), metadata=auth(key))
        call = stub.Subscribe(since(start), metadata=auth(key))
        (first,) = await take(call, 1)
        call.cancel()
        # The database cuts its oplog to size when it gets round to it: bury the cursor
        # deeper until it has.
        for _ in range(10):
            await _bury(stub, key)
            resumed = stub.Subscribe(tracking_pb2.SubscribeRequest(cursor=first.cursor),
                                     metadata=auth(key))
            try:
                await asyncio.wait_for(resumed.read(), 30)
            except grpc.aio.AioRpcError:
                break
            resumed.cancel()
        code, _, reason = await _error(stub.Subscribe(
            tracking_pb2.SubscribeRequest(cursor=first.cursor), metadata=auth(key)))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CURSOR_EXPIRED")


async def test_an_endpoint_behind_the_history_records_the_skip_and_goes_on(
        short_history: Store, served: TrackdServer) -> None:
    key = (await issue_key(short_history.keys, "acme", ALL_SCOPES)).secret
    async with receiving() as receiver, \
            grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = tracking_pb2_grpc.TrackingServiceStub(channel)
        endpoint, _ = await Webhooks(short_history, True).create("acme", receiver.url,
                                                                 ["after"], 1)
        # Nobody delivers meanwhile: write until the database has cut its oplog past the
        # endpoint's position (it does when it gets round to it).
        for _ in range(10):
            await _bury(stub, key)
            if await _lost(short_history, endpoint.cursor):
                break
        async with delivering(short_history):
            await asyncio.sleep(3)
            await stub.TrackEvent(tracking_pb2.TrackEventRequest(event=tracking_pb2.Event(
                name="after", external_user_id="u")), metadata=auth(key))
            await receiver.wait_for(lambda s: len(s) >= 1)
        attempts = await short_history.deliveries.attempts(endpoint.id, 10)
    assert receiver.seen[0].json["data"]["name"] == "after"
    skipped = [a for a in attempts if a["outcome"] == "skipped"]
    assert len(skipped) == 1
    assert skipped[0]["error"].startswith("history lost")
