"""The retry queue's bound (``TRACKD_WEBHOOK_MAX_QUEUED``): an endpoint whose queue is full
dead-letters the messages that would go past it at once, with a record, a log line and a
metric; the queue never holds more. Real server, real deliverer, a real receiver."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase

from tests.outbound.helpers import Reply, delivering, receiving
from tests.outbound.test_delivery import create, track
from tests.outbound.test_lifecycle import until
from trackd.server.app import ServerConfig
from trackd.storage import Store
from trackd.storage.indexes import WEBHOOK_DEAD_LETTERS, WEBHOOK_QUEUE
from trackd.v1 import tracking_pb2_grpc, webhooks_pb2_grpc

CAP = 3
EVENTS = 10
FULL = (f"retry queue full ({CAP} messages, TRACKD_WEBHOOK_MAX_QUEUED): dead-lettered "
        "without a retry")


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, webhook_allow_private=True)


@pytest.fixture
def webhooks(channel: grpc.aio.Channel) -> webhooks_pb2_grpc.WebhookServiceStub:
    return webhooks_pb2_grpc.WebhookServiceStub(channel)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_a_full_retry_queue_dead_letters_what_would_go_past_it(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str,
        caplog: pytest.LogCaptureFixture) -> None:
    db: AsyncDatabase[Any] = store.db
    full_before = sample("trackd_webhook_queue_full_dead_letters_total")
    dead_before = sample("trackd_webhook_dead_letters_total")
    # One user's events to a receiver that fails everything, retried only after an
    # hour: the first message fails and queues, every later one queues behind it, and
    # nothing leaves the queue during the test.
    with caplog.at_level(logging.WARNING, logger="trackd.outbound.lane"):
        async with receiving(lambda headers, body: Reply(500)) as receiver, \
                delivering(store, retry_schedule=(3600.0,), max_queued=CAP):
            endpoint = (await create(webhooks, key, receiver.url)).endpoint.id
            await track(tracking, key, [("ursula", f"step_{n}") for n in range(EVENTS)])

            async def all_placed() -> bool:
                placed = (await db[WEBHOOK_QUEUE].count_documents({"endpoint_id": endpoint})
                          + await db[WEBHOOK_DEAD_LETTERS].count_documents(
                              {"endpoint_id": endpoint}))
                return bool(placed == EVENTS)
            await until(all_placed)

    queued = await db[WEBHOOK_QUEUE].find({"endpoint_id": endpoint}).sort("seq", 1) \
        .to_list(None)
    dead = await db[WEBHOOK_DEAD_LETTERS].find({"endpoint_id": endpoint}).to_list(None)
    assert len(queued) == CAP
    assert len(dead) == EVENTS - CAP
    assert {doc["last_error"] for doc in dead} == {FULL}
    # Only the first message was tried; the rest waited behind it, or were turned away.
    assert len(receiver.seen) == 1
    assert queued[0]["msg_id"] == receiver.seen[0].headers["webhook-id"]
    assert [doc["attempts"] for doc in queued] == [1] + [0] * (CAP - 1)
    assert not {doc["msg_id"] for doc in queued} & {doc["msg_id"] for doc in dead}
    assert sample("trackd_webhook_queue_full_dead_letters_total") - full_before \
        == EVENTS - CAP
    assert sample("trackd_webhook_dead_letters_total") - dead_before == EVENTS - CAP
    warnings = [r.getMessage() for r in caplog.records if "TRACKD_WEBHOOK_MAX_QUEUED" in
                r.getMessage()]
    assert warnings == [f"webhook endpoint {endpoint}: its retry queue holds {CAP} messages "
                        "(TRACKD_WEBHOOK_MAX_QUEUED); messages that would queue are dead-lettered "
                        "at once until it drains"]
