"""The database dies under a server whose audience index follows its change stream:
evaluations count what was written after the database came back, and the index serves
again (the stream resumes from its last change, or is reopened and the project loaded
anew)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import grpc

from tests.durability.harness import START_TIMEOUT, Database
from tests.server.test_audiences_grpc import COUNT_GT, ev, history, members, one, upsert
from trackd.server.app import ServerConfig, create_server
from trackd.server.auth import ALL_SCOPES, issue_key
from trackd.server.pipeline import PipelineConfig
from trackd.storage import connect
from trackd.v1 import audiences_pb2_grpc, tracking_pb2_grpc, users_pb2_grpc

T = TypeVar("T")
RETRY_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


async def retried(call: Callable[[], Awaitable[T]]) -> T:
    """``call`` until it is not refused as unavailable (the database is coming back)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RETRY_CODES or time.monotonic() > deadline:
                raise


async def test_database_restart_under_the_audience_index(database: Database) -> None:
    store = await connect(database.uri, "trackd")
    server = await create_server(store, ServerConfig(port=0, auth_cache_seconds=0,
                                                     pipeline=PipelineConfig()))
    index = server.audience_index
    assert index is not None
    key = (await issue_key(store.keys, "acme", ALL_SCOPES)).secret
    twice = one(ev(COUNT_GT, "viewed", count=2))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            audiences = audiences_pb2_grpc.AudienceServiceStub(channel)
            users = users_pb2_grpc.UserServiceStub(channel)
            tracking = tracking_pb2_grpc.TrackingServiceStub(channel)
            when = [("viewed", datetime.now(UTC)) for _ in range(3)]
            for person in ("ann", "bob"):
                await upsert(users, key, person)
            await history(tracking, key, "ann", *when)
            assert await index.prepare("acme")
            assert await members(audiences, key, twice) == ["ann"]

            database.kill()
            await database.start()

            await retried(lambda: history(tracking, key, "bob", *when))
            assert await retried(lambda: members(audiences, key, twice)) == ["ann", "bob"]
            # The index serves again by itself.
            deadline = time.monotonic() + START_TIMEOUT
            while not await index.prepare("acme"):
                assert time.monotonic() < deadline, "the audience index never served again"
            assert await index.view("acme") is not None
            await retried(lambda: history(tracking, key, "ann", *when))
            assert await members(audiences, key, one(ev(COUNT_GT, "viewed", count=5))) == \
                ["ann"]
    finally:
        await server.stop(5)
        await store.close()
