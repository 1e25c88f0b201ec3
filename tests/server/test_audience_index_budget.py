"""The audience index's memory budget: past it, the least recently evaluated project is
dropped, its evaluations read the events, and it loads again on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from tests.helpers import KeyFactory
from tests.server.test_audiences_grpc import ALL_SCOPES, HAS_DONE, ev, history, members, one, upsert
from trackd.server.app import ServerConfig, TrackdServer, create_server
from trackd.server.audiences.index_contents import STAT_ENTRY_BYTES, USER_BYTES, IndexSize
from trackd.server.pipeline import PipelineConfig
from trackd.storage import Store
from trackd.v1 import audiences_pb2_grpc, tracking_pb2_grpc, users_pb2_grpc

EARLIER = datetime.now(UTC) - timedelta(hours=1)
# Each project below: two users, each with one statistic ("viewed").
ONE_PROJECT = 2 * STAT_ENTRY_BYTES + 2 * USER_BYTES


@pytest.fixture
async def small_server(store: Store) -> AsyncIterator[TrackdServer]:
    """An indexed server whose budget holds one such project, not two."""
    server = await create_server(store, ServerConfig(
        port=0, auth_cache_seconds=0, pipeline=PipelineConfig(),
        audience_index_max_bytes=ONE_PROJECT + ONE_PROJECT // 2))
    yield server
    await server.stop(grace=5)


async def test_least_recently_evaluated_project_is_dropped_and_loads_again(
    small_server: TrackdServer, make_key: KeyFactory
) -> None:
    index = small_server.audience_index
    assert index is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{small_server.port}") as channel:
        users = users_pb2_grpc.UserServiceStub(channel)
        tracking = tracking_pb2_grpc.TrackingServiceStub(channel)
        audiences = audiences_pb2_grpc.AudienceServiceStub(channel)
        keys = {project: await make_key(project, ALL_SCOPES) for project in ("acme", "beta")}
        for project, key in keys.items():
            for person in (f"{project}-1", f"{project}-2"):
                await upsert(users, key, person)
                await history(tracking, key, person, ("viewed", EARLIER))
        viewed = one(ev(HAS_DONE, "viewed"))

        assert await index.prepare("acme")
        assert index.size() == IndexSize(projects=1, users=2, statistics=2)
        assert index.size_bytes() == ONE_PROJECT

        assert await index.prepare("beta")  # over budget with both: acme goes
        assert index.size() == IndexSize(projects=1, users=2, statistics=2)
        assert await index.view("beta") is not None

        # acme is answered from the events meanwhile, and loads again on demand.
        assert await members(audiences, keys["acme"], viewed) == ["acme-1", "acme-2"]
        assert await index.prepare("acme")
        assert index.size() == IndexSize(projects=1, users=2, statistics=2)
        assert await index.view("acme") is not None
        assert await members(audiences, keys["acme"], viewed) == ["acme-1", "acme-2"]
        assert await members(audiences, keys["beta"], viewed) == ["beta-1", "beta-2"]
