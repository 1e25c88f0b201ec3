"""Fixtures for servers in unusual situations: no database, a tiny write queue.

They use the real server and real repositories; "no database" is a real client pointed
at a loopback port where nothing listens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from server.app import ServerConfig, TrackdServer, create_server
from server.pipeline import PipelineConfig
from storage import Store, connect
from trackd.v1 import tracking_pb2_grpc

DEAD_URI = "mongodb://127.0.0.1:1/?directConnection=true"


@pytest.fixture
async def dead_store() -> AsyncIterator[Store]:
    """A store whose database does not exist: every operation times out (300 ms)."""
    store = await connect(DEAD_URI, "x", server_selection_timeout_ms=300, create_indexes=False)
    yield store
    await store.close()


@asynccontextmanager
async def _serve(store: Store, config: ServerConfig) -> AsyncIterator[
        tuple[TrackdServer, tracking_pb2_grpc.TrackingServiceStub]]:
    srv = await create_server(store, config)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            yield srv, tracking_pb2_grpc.TrackingServiceStub(channel)
    finally:
        await srv.stop(grace=5)


@pytest.fixture
async def dead_db_tracking(
    dead_store: Store, server_config: ServerConfig
) -> AsyncIterator[tracking_pb2_grpc.TrackingServiceStub]:
    """A server whose whole database is unreachable (keys included)."""
    async with _serve(dead_store, server_config) as (_, stub):
        yield stub


@pytest.fixture
async def events_down(
    store: Store, dead_store: Store, server_config: ServerConfig
) -> AsyncIterator[tuple[TrackdServer, tracking_pb2_grpc.TrackingServiceStub]]:
    """A server whose keys and idempotency records live in the test database but whose
    events collection is unreachable: authentication passes, the durable write fails."""
    split = dataclasses.replace(store, events=dead_store.events)
    async with _serve(split, server_config) as pair:
        yield pair


@pytest.fixture
async def tiny_queue(
    store: Store,
) -> AsyncIterator[tuple[TrackdServer, tracking_pb2_grpc.TrackingServiceStub]]:
    """A server on the test database whose write queue holds at most 10 events."""
    config = ServerConfig(port=0, auth_cache_seconds=0,
                          pipeline=PipelineConfig(max_queued_events=10))
    async with _serve(store, config) as pair:
        yield pair
