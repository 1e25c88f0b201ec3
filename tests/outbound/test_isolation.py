"""A receiver that hangs costs its own endpoint's lane and nothing else: acknowledgements
complete while it holds every request it got, another endpoint gets every event, and the
lag metric says how far behind the hung one is."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from prometheus_client import REGISTRY

from tests.outbound.helpers import Reply, delivering, names_in, receiving
from tests.outbound.test_delivery import auth, create
from trackd.server.app import ServerConfig
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc, webhooks_pb2_grpc


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, webhook_allow_private=True)


async def test_acks_and_other_endpoints_go_on_while_a_receiver_hangs(
        store: Store, channel: grpc.aio.Channel,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    webhooks = webhooks_pb2_grpc.WebhookServiceStub(channel)
    release = asyncio.Event()
    hanging: list[int] = []

    def hang(headers: dict[str, str], body: bytes) -> Reply:
        hanging.append(1)
        return Reply(200, wait=release)

    async with receiving(hang) as stuck, receiving() as healthy, \
            delivering(store, timeout_seconds=120.0):
        await create(webhooks, key, stuck.url)
        await create(webhooks, key, healthy.url)
        await asyncio.sleep(1.5)  # both lanes are running

        async def one(n: int) -> str:
            response = await tracking.TrackEvent(tracking_pb2.TrackEventRequest(
                event=tracking_pb2.Event(name=f"n{n}", external_user_id=f"user{n % 20}")),
                metadata=auth(key))
            return str(response.event_id)

        ids = await asyncio.gather(*(one(n) for n in range(200)))
        # Every call was acknowledged while the hung receiver held its requests, unanswered.
        assert len(set(ids)) == 200
        assert hanging
        assert stuck.seen == []
        await healthy.wait_for(lambda s: len(s) >= 200)
        assert sorted(names_in(healthy.seen)) == sorted(f"n{n}" for n in range(200))
        assert stuck.seen == []

        async def lag() -> float:
            return REGISTRY.get_sample_value("trackd_webhook_lag_seconds") or 0.0
        deadline = asyncio.get_running_loop().time() + 30
        while await lag() < 1.0:  # the hung endpoint's oldest event, growing older
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)
        # One request per user, at most the concurrency: the lane waits, it does not pile up.
        assert len(hanging) <= 16
        release.set()
        await stuck.wait_for(lambda s: len(names_in(s)) >= 200)
