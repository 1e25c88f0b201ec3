"""The deliverer gets out of bad states: a paused endpoint whose queue emptied resumes
when its receiver is back, one user's long queue does not starve another user's retry,
a process never runs two lanes for one endpoint, and a message queued again is counted
once. Real server, real database, real receivers on port 0, verified with the reference
Standard Webhooks library."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from tests.outbound.helpers import Reply, Seen, delivering, names_in, receiving, verify
from tests.outbound.test_delivery import auth, create, track
from tests.outbound.test_lifecycle import until
from trackd.outbound.config import DeliveryConfig
from trackd.outbound.http import Sender
from trackd.outbound.lane import PAUSE_AFTER_FAILURES, Lane
from trackd.outbound.messages import make_messages, new_secret
from trackd.server.app import ServerConfig
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc, webhooks_pb2_grpc


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, webhook_allow_private=True)


@pytest.fixture
def webhooks(channel: grpc.aio.Channel) -> webhooks_pb2_grpc.WebhookServiceStub:
    return webhooks_pb2_grpc.WebhookServiceStub(channel)


def stored_event(event_id: str, user: str, at: datetime) -> dict[str, Any]:
    """An event as the events collection holds it (what a message is made from)."""
    return {"event_id": event_id, "project_id": "acme", "name": "step", "user_id": user,
            "anonymous_id": None, "timestamp": at, "received_at": at, "via": "grpc",
            "properties": {}}


def user_of(seen: Seen) -> str:
    return str(seen.json["data"]["user_id"])


async def test_a_paused_endpoint_whose_queue_emptied_resumes_when_the_receiver_is_back(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    down = True

    def behave(headers: dict[str, str], body: bytes) -> Reply:
        return Reply(500 if down else 200)

    users = PAUSE_AFTER_FAILURES // 2 + 1  # two failed attempts each: past the pause
    async with receiving(behave) as receiver, \
            delivering(store, retry_schedule=(0.1,)) as deliverer:
        created = await create(webhooks, key, receiver.url)
        endpoint_id = created.endpoint.id
        await tracking.BatchTrack(tracking_pb2.BatchTrackRequest(events=[
            tracking_pb2.Event(name=f"d{n}", external_user_id=f"user{n}")
            for n in range(users)]), metadata=auth(key))

        async def all_dead() -> bool:
            counts = await store.deliveries.counts([endpoint_id])
            return counts[endpoint_id] == (0, users)
        await until(all_dead)
        lane = deliverer.lanes[endpoint_id][0]
        assert lane.failures_in_a_row >= PAUSE_AFTER_FAILURES  # paused, nothing queued
        assert names_in(receiver.seen) == []

        down = False  # the receiver is back; only a new event can tell
        await track(tracking, key, [("back", "after")])
        await receiver.wait_for(lambda s: names_in(s) == ["after"])

        async def recovered() -> bool:  # saved with the next lease renewal
            endpoint = await store.webhooks.get(endpoint_id)
            return endpoint is not None and endpoint.failing_since is None
        await until(recovered)
        await track(tracking, key, [("back", "again")])
        await receiver.wait_for(lambda s: names_in(s) == ["after", "again"])
    assert len(receiver.seen) == 2 * users + 2
    for seen in receiver.delivered():
        verify(created.secret, seen)
    endpoint = await store.webhooks.get(endpoint_id)
    assert endpoint is not None
    assert endpoint.enabled


async def test_a_user_with_thousands_queued_does_not_starve_another_users_retry(
        store: Store) -> None:
    def behave(headers: dict[str, str], body: bytes) -> Reply:
        return Reply(500 if user_of(Seen(headers, body, 0)) == "hog" else 200)

    async with receiving(behave) as receiver:
        secret = new_secret()
        now = datetime.now(UTC)
        endpoint = await store.webhooks.insert("ep_starve", "acme", receiver.url, [], 1, secret,
                                               now, None)
        # Queued as a replay queues them: 2100 of the hog's, then one of another user.
        docs = [stored_event(f"hog-{n}", "hog", now) for n in range(2100)]
        docs.append(stored_event("other-1", "other", now))
        messages = make_messages(endpoint.id, 1, docs)
        first = await store.webhooks.take_seq(endpoint.id, len(messages))
        for offset, message in enumerate(messages):
            message.seq, message.next_at, message.adopted = first + offset, now, False
        assert await store.deliveries.enqueue(endpoint.id, messages) == 2101
        async with delivering(store, retry_schedule=(3600.0,)):
            await receiver.wait_for(
                lambda s: any(user_of(x) == "other" and x.status == 200 for x in s))
    other = [s for s in receiver.seen if user_of(s) == "other"]
    assert [s.json["data"]["id"] for s in other] == ["other-1"]
    verify(secret, other[0])
    # Only the hog's first message was tried (and waits an hour); the rest wait behind it.
    hog = [s for s in receiver.seen if user_of(s) == "hog"]
    assert [s.json["data"]["id"] for s in hog] == ["hog-0"]
    assert (await store.deliveries.counts([endpoint.id]))[endpoint.id] == (2100, 0)


async def test_a_lapsed_lease_of_its_own_never_gives_a_second_lane(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    def running_lanes() -> int:
        return sum(1 for task in asyncio.all_tasks()
                   if getattr(task.get_coro(), "__qualname__", "") == "Deliverer._run")

    async with receiving() as receiver, delivering(store) as deliverer:
        created = await create(webhooks, key, receiver.url)
        endpoint_id = created.endpoint.id

        async def delivering_it() -> bool:
            return endpoint_id in deliverer.lanes
        await until(delivering_it)
        lane = deliverer.lanes[endpoint_id][0]
        # A stall: the lease lapses while this process still runs the lane, again and
        # again for a whole lease (the claim loop looks four times meanwhile).
        endpoints = store.db["webhook_endpoints"]
        loop = asyncio.get_running_loop()
        stop = loop.time() + deliverer.config.lease_seconds
        while loop.time() < stop:
            await endpoints.update_one({"_id": endpoint_id}, {"$set": {
                "lease_until": datetime.now(UTC) - timedelta(minutes=1)}})
            await asyncio.sleep(0.05)
        assert running_lanes() == 1
        assert deliverer.lanes[endpoint_id][0] is lane
        await track(tracking, key, [("lou", "l1"), ("lou", "l2"), ("max", "m1")])
        await receiver.wait_for(lambda s: len(names_in(s)) >= 3)
        await asyncio.sleep(1.0)  # a second lane would send them again meanwhile
    assert sorted(names_in(receiver.seen)) == ["l1", "l2", "m1"]
    for seen in receiver.seen:
        verify(created.secret, seen)


async def test_a_message_queued_again_stays_counted_once(store: Store) -> None:
    now = datetime.now(UTC)
    endpoint = await store.webhooks.insert("ep_again", "acme", "http://127.0.0.1:9/hook", [], 1,
                                           new_secret(), now, None)
    sender = Sender(1.0, 4096, True)
    lane = Lane(endpoint, store.webhooks, store.deliveries, store.db, sender, DeliveryConfig(),
                "test-holder")
    try:
        doc = stored_event("kim-1", "kim", now)
        (message,) = make_messages(endpoint.id, 1, [doc])
        await lane.enqueue([message])
        (again,) = make_messages(endpoint.id, 1, [doc])  # made again, as after a crash
        await lane.enqueue([again])
        assert dict(lane.blocked) == {"u:kim": 1}
        assert (await store.deliveries.counts([endpoint.id]))[endpoint.id] == (1, 0)
        lane.unblock(message)  # it left the queue: kim's next message goes live again
        assert dict(lane.blocked) == {}
    finally:
        await sender.close()
