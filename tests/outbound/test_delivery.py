"""Webhook delivery end to end, in process: the real gRPC server stores events, a real
deliverer sends them to real receivers on port 0, and every signature is verified with
the reference Standard Webhooks library."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import grpc
import pytest

from tests.outbound.helpers import Reply, Seen, delivering, names_in, receiving, verify
from trackd.server.app import ServerConfig
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc, webhooks_pb2, webhooks_pb2_grpc


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, webhook_allow_private=True)


@pytest.fixture
def webhooks(channel: grpc.aio.Channel) -> webhooks_pb2_grpc.WebhookServiceStub:
    return webhooks_pb2_grpc.WebhookServiceStub(channel)


def auth(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


async def create(webhooks: webhooks_pb2_grpc.WebhookServiceStub, key: str, url: str,
                 **fields: Any) -> webhooks_pb2.CreateEndpointResponse:
    response: webhooks_pb2.CreateEndpointResponse = await webhooks.CreateEndpoint(
        webhooks_pb2.CreateEndpointRequest(url=url, **fields), metadata=auth(key))
    return response


async def track(tracking: tracking_pb2_grpc.TrackingServiceStub, key: str,
                events: list[tuple[str, str]], **extra: Any) -> list[str]:
    """Store events (user, name) one call each, in order; their ids. A call a loaded
    machine answers UNAVAILABLE is retried with the same event id, as a client would."""
    ids = []
    for user, name in events:
        event_id = str(uuid.uuid4())
        for attempt in range(20):
            try:
                await tracking.TrackEvent(tracking_pb2.TrackEventRequest(
                    event=tracking_pb2.Event(event_id=event_id, name=name,
                                             external_user_id=user, **extra)),
                    metadata=auth(key))
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        ids.append(event_id)
    return ids


def per_user(seen: list[Seen]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in seen:
        if 200 <= s.status < 300:
            data = s.json["data"]
            out.setdefault(data["user_id"], []).append(data["name"])
    return out


async def test_a_delivery_is_signed_and_carries_the_stored_event(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    async with receiving() as receiver, delivering(store):
        created = await create(webhooks, key, receiver.url)
        assert created.secret.startswith("whsec_")
        assert created.endpoint.state == webhooks_pb2.ENDPOINT_STATE_ENABLED
        (event_id,) = await track(tracking, key, [("alice", "user_signed_up")],
                                  properties_json=b'{"plan":"pro","seats":3}')
        (seen,) = await receiver.wait_for(lambda s: len(s) >= 1)

    print("\nheaders:", {k: v for k, v in seen.headers.items() if k.startswith(
        ("webhook-", "content-type", "user-agent"))})
    print("body:", seen.body.decode())
    body = verify(created.secret, seen)
    print("verified by standardwebhooks.Webhook(secret).verify(body, headers):", body["type"])
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"].startswith("trackd/")
    assert seen.headers["webhook-id"].startswith("msg_")
    assert abs(int(seen.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 300
    doc = (await store.db["events"].find_one({"event_id": event_id}))
    assert doc is not None
    received = cast(datetime, doc["received_at"])
    received = received.astimezone(UTC)
    stamp = received.strftime("%Y-%m-%dT%H:%M:%S.") + f"{received.microsecond // 1000:03d}Z"
    assert body == {"type": "event.tracked", "timestamp": stamp, "data": {
        "id": event_id, "project": "acme", "name": "user_signed_up", "user_id": "alice",
        "anonymous_id": None, "timestamp": stamp, "received_at": stamp, "source": "grpc",
        "properties": {"plan": "pro", "seats": 3}}}
    # Another secret does not verify it.
    with pytest.raises(Exception, match="signature"):
        verify("whsec_" + "A" * 44, seen)


async def test_each_user_in_order_through_failures_429_and_timeouts(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    tries: dict[str, int] = {}

    def behave(headers: dict[str, str], body: bytes) -> Reply:
        data = Seen(headers, body, 0).json["data"]
        name = data["name"]
        tries[name] = tries.get(name, 0) + 1
        if name == "a2" and tries[name] <= 2:  # fails twice, then goes through
            return Reply(500)
        if name == "b1" and tries[name] == 1:  # rate limited: wait a second
            return Reply(429, {"retry-after": "1"})
        return Reply(200)

    async with receiving(behave) as receiver, delivering(store, timeout_seconds=2.0):
        created = await create(webhooks, key, receiver.url)
        events = [("alice", "a1"), ("bob", "b1"), ("alice", "a2"), ("carol", "c1"),
                  ("alice", "a3"), ("bob", "b2"), ("carol", "c2"), ("alice", "a4")]
        await track(tracking, key, events)
        await receiver.wait_for(lambda s: len(names_in(s)) >= len(events))
        for seen in receiver.seen:
            verify(created.secret, seen)
    order = per_user(receiver.seen)
    assert order == {"alice": ["a1", "a2", "a3", "a4"], "bob": ["b1", "b2"],
                     "carol": ["c1", "c2"]}
    assert tries["a2"] == 3
    assert tries["b1"] == 2
    # The 429's Retry-After held b1 back at least a second.
    b1 = [s for s in receiver.seen if s.json["data"]["name"] == "b1"]
    assert b1[1].at - b1[0].at >= 0.9
    # Carol was never held back by alice's failures: she finished before alice's a2 did.
    names = [s.json["data"]["name"] for s in receiver.delivered()]
    assert names.index("c2") < names.index("a2")
    # The same message each time: same webhook-id, same bytes.
    a2 = [s for s in receiver.seen if s.json["data"]["name"] == "a2"]
    assert len({s.headers["webhook-id"] for s in a2}) == 1
    assert len({s.body for s in a2}) == 1


async def test_a_hanging_receiver_times_out_and_its_user_waits(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    release = asyncio.Event()
    calls: list[str] = []

    def behave(headers: dict[str, str], body: bytes) -> Reply:
        name = Seen(headers, body, 0).json["data"]["name"]
        calls.append(name)
        if name == "slow1" and calls.count("slow1") == 1:
            return Reply(200, wait=release)  # hangs until the deliverer tried again
        if name == "slow1":
            release.set()
        return Reply(200)

    async with receiving(behave) as receiver, delivering(store, timeout_seconds=1.0):
        await create(webhooks, key, receiver.url)
        await track(tracking, key, [("slow", "slow1"), ("slow", "slow2"), ("fast", "f1")])
        await receiver.wait_for(lambda s: "slow2" in names_in(s))
    # f1 went while slow1 hung; slow2 only after slow1's second attempt was answered.
    slow1 = [i for i, name in enumerate(calls) if name == "slow1"]
    assert len(slow1) == 2
    assert calls.index("f1") < slow1[1] < calls.index("slow2")
    endpoint = (await store.webhooks.listing("acme"))[0]
    attempts = await store.deliveries.attempts(endpoint.id, 50)
    assert [a["error"] for a in attempts].count("timeout") == 1


async def test_batches_carry_consecutive_events_in_order(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    async with receiving() as receiver, delivering(store):
        created = await create(webhooks, key, receiver.url, batch_size=3)
        assert created.endpoint.batch_size == 3
        response = await tracking.BatchTrack(tracking_pb2.BatchTrackRequest(events=[
            tracking_pb2.Event(name=f"b{n}", external_user_id=f"user{n % 2}")
            for n in range(7)]), metadata=auth(key))
        await receiver.wait_for(lambda s: len(names_in(s)) >= 7)
    bodies = [verify(created.secret, seen) for seen in receiver.seen]
    assert {body["type"] for body in bodies} == {"event.batch"}
    assert all(1 <= len(body["data"]["events"]) <= 3 for body in bodies)
    delivered = [event["id"] for body in bodies for event in body["data"]["events"]]
    assert delivered == list(response.event_ids)  # one insert: the batch's own order
    assert names_in(receiver.seen) == [f"b{n}" for n in range(7)]
