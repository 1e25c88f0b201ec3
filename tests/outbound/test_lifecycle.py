"""An endpoint's life: dead letters and their replay, 410 Gone, secret rotation, replay
from a time, and the attempts log; real receivers, real server, real deliverer."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import timestamp_pb2
from prometheus_client import REGISTRY

from tests.outbound.helpers import Reply, Seen, delivering, names_in, receiving, verify
from tests.outbound.test_delivery import auth, create, track
from trackd.server.app import ServerConfig
from trackd.storage import Store
from trackd.v1 import tracking_pb2_grpc, webhooks_pb2, webhooks_pb2_grpc


@pytest.fixture
def server_config(server_config: ServerConfig) -> ServerConfig:
    return dataclasses.replace(server_config, webhook_allow_private=True)


@pytest.fixture
def webhooks(channel: grpc.aio.Channel) -> webhooks_pb2_grpc.WebhookServiceStub:
    return webhooks_pb2_grpc.WebhookServiceStub(channel)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def show(title: str, seen: Seen) -> None:
    """What a receiver saw, for the report (pytest -s)."""
    headers = {k: v for k, v in seen.headers.items() if k.startswith("webhook-")}
    print(f"\n{title}: HTTP {seen.status} {headers}\n  {seen.body.decode()}")


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 60.0) -> None:
    """Poll ``check`` (a database state) until it holds; fail after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_a_dead_letter_is_kept_counted_and_replayed_with_the_same_id_and_body(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    down = True

    def behave(headers: dict[str, str], body: bytes) -> Reply:
        return Reply(503 if down else 200)

    dead_before = sample("trackd_webhook_dead_letters_total")
    retries_before = sample("trackd_webhook_attempts_total", outcome="retry")
    async with receiving(behave) as receiver, delivering(store, retry_schedule=(0.1, 0.1)):
        created = await create(webhooks, key, receiver.url)
        endpoint_id = created.endpoint.id
        await track(tracking, key, [("dora", "invoice_paid")])
        await receiver.wait_for(lambda s: len(s) >= 3)  # 1 + 2 retries

        async def dead_lettered() -> bool:
            got = await webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=endpoint_id),
                                             metadata=auth(key))
            return bool(got.endpoint.dead_letters == 1)
        await until(dead_lettered)
        assert sample("trackd_webhook_dead_letters_total") - dead_before == 1
        assert sample("trackd_webhook_attempts_total", outcome="retry") - retries_before == 2
        for seen in receiver.seen:
            show("attempt", seen)

        down = False
        replayed = await webhooks.Replay(webhooks_pb2.ReplayRequest(id=endpoint_id, failed=True),
                                         metadata=auth(key))
        assert replayed.queued == 1
        await receiver.wait_for(lambda s: len(s) >= 4)
        show("replayed", receiver.seen[3])
        print("replay queued:", replayed.queued)
        got = await webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=endpoint_id),
                                         metadata=auth(key))
        assert got.endpoint.dead_letters == 0

        async def recorded() -> bool:  # attempt records are written with lease renewals
            listed = await webhooks.ListAttempts(
                webhooks_pb2.ListAttemptsRequest(id=endpoint_id), metadata=auth(key))
            return len(listed.attempts) >= 4
        await until(recorded)
        attempts = await webhooks.ListAttempts(
            webhooks_pb2.ListAttemptsRequest(id=endpoint_id), metadata=auth(key))

    first, replay = receiver.seen[0], receiver.seen[3]
    assert replay.status == 200
    assert replay.headers["webhook-id"] == first.headers["webhook-id"]
    assert replay.body == first.body
    verify(created.secret, replay)
    # Newest first: delivered (the replay), then dead_letter, retry, retry.
    assert [a.outcome for a in attempts.attempts][:4] == ["delivered", "dead_letter", "retry",
                                                          "retry"]
    assert [a.status for a in attempts.attempts][:4] == [200, 503, 503, 503]
    assert {a.webhook_id for a in attempts.attempts} == {first.headers["webhook-id"]}


async def test_410_disables_the_endpoint_and_enabling_resumes_with_nothing_lost(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    gone = True

    def behave(headers: dict[str, str], body: bytes) -> Reply:
        return Reply(410 if gone else 200)

    async with receiving(behave) as receiver, delivering(store):
        created = await create(webhooks, key, receiver.url)
        endpoint_id = created.endpoint.id
        await track(tracking, key, [("erin", "e1")])
        await receiver.wait_for(lambda s: len(s) >= 1)

        async def disabled() -> bool:
            got = await webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=endpoint_id),
                                             metadata=auth(key))
            return bool(got.endpoint.state == webhooks_pb2.ENDPOINT_STATE_DISABLED_GONE)
        await until(disabled)
        await track(tracking, key, [("erin", "e2")])
        gone = False
        await webhooks.EnableEndpoint(webhooks_pb2.EnableEndpointRequest(id=endpoint_id),
                                      metadata=auth(key))
        await receiver.wait_for(lambda s: names_in(s) == ["e1", "e2"])
    assert [s.status for s in receiver.seen] == [410, 200, 200]


async def test_rotation_signs_with_both_secrets_for_a_day(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    async with receiving() as receiver, delivering(store):
        created = await create(webhooks, key, receiver.url)
        rotated = await webhooks.RotateSecret(
            webhooks_pb2.RotateSecretRequest(id=created.endpoint.id), metadata=auth(key))
        await asyncio.sleep(0.6)  # the lane picks the new secrets up at its next renewal
        await track(tracking, key, [("fay", "f1")])
        (seen,) = await receiver.wait_for(lambda s: len(s) >= 1)
    show("during a rotation", seen)
    assert rotated.secret.startswith("whsec_")
    assert rotated.secret != created.secret
    overlap = rotated.previous_expires_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
    assert 23.9 * 3600 < overlap.total_seconds() <= 24 * 3600
    signatures = seen.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    verify(created.secret, seen)  # receivers that have not switched yet
    verify(rotated.secret, seen)  # and those that have
    print("verified with the old secret and with the new one")


async def test_replay_from_a_time_sends_the_same_messages_again_in_order(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    async with receiving() as receiver, delivering(store):
        created = await create(webhooks, key, receiver.url, event_names=["kept"])
        await track(tracking, key, [("gus", "skipped")])
        since = timestamp_pb2.Timestamp()
        since.FromDatetime(datetime.now(UTC))
        await track(tracking, key, [("gus", "kept"), ("hal", "kept"), ("gus", "skipped"),
                                    ("gus", "kept")])
        await receiver.wait_for(lambda s: len(s) >= 3)
        replayed = await webhooks.Replay(webhooks_pb2.ReplayRequest(
            id=created.endpoint.id, since=since), metadata=auth(key))
        assert replayed.queued == 3
        await receiver.wait_for(lambda s: len(s) >= 6)
    first, again = receiver.seen[:3], receiver.seen[3:]

    def by_user(seen: list[Seen]) -> dict[str, list[tuple[str, bytes]]]:
        # Users go concurrently: arrival order is kept per user only.
        out: dict[str, list[tuple[str, bytes]]] = {}
        for s in seen:
            out.setdefault(s.json["data"]["user_id"], []).append(
                (s.headers["webhook-id"], s.body))
        return out
    assert by_user(again) == by_user(first)
    assert len(by_user(first)["gus"]) == 2
    assert names_in(receiver.seen) == ["kept"] * 6


async def test_management_needs_the_scope_and_stays_in_the_project(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub, make_key: object,
        key: str) -> None:
    tracker = await make_key("acme", ("track:events",))  # type: ignore[operator]
    other = await make_key("other", ("webhooks:manage",))  # type: ignore[operator]
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await webhooks.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), metadata=auth(tracker))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    created = await create(webhooks, key, "http://127.0.0.1:9/hook")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await webhooks.GetEndpoint(webhooks_pb2.GetEndpointRequest(id=created.endpoint.id),
                                   metadata=auth(other))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await webhooks.ListEndpoints(webhooks_pb2.ListEndpointsRequest(), metadata=auth(key))
    assert [e.id for e in listed.endpoints] == [created.endpoint.id]
    assert created.secret.startswith("whsec_")
    assert created.secret not in str(listed)
    assert "whsec_" not in str(listed)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await create(webhooks, key, "http://127.0.0.1:9/hook", batch_size=501)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch_size" in (bad.value.details() or "")
    stored = await store.webhooks.listing("acme")
    assert [e.id for e in stored] == [created.endpoint.id]
    # What a log line or a traceback would show of an endpoint: never its secret.
    assert stored[0].signing_secrets(datetime.now(UTC)) == [created.secret]
    assert created.secret not in repr(stored)
    assert "whsec_" not in repr(stored)


async def test_an_endpoint_failing_for_the_whole_window_is_disabled(
        store: Store, webhooks: webhooks_pb2_grpc.WebhookServiceStub,
        tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    disabled_before = sample("trackd_webhook_attempts_total", outcome="disabled")
    async with receiving(lambda h, b: Reply(500)) as receiver, \
            delivering(store, retry_schedule=(0.2,) * 50, disable_after_failing_seconds=1.0):
        created = await create(webhooks, key, receiver.url)
        await track(tracking, key, [("ivy", "i1")])

        async def disabled() -> bool:
            got = await webhooks.GetEndpoint(
                webhooks_pb2.GetEndpointRequest(id=created.endpoint.id), metadata=auth(key))
            return bool(got.endpoint.state == webhooks_pb2.ENDPOINT_STATE_DISABLED_FAILING)
        await until(disabled)
    got = await webhooks.GetEndpoint(
        webhooks_pb2.GetEndpointRequest(id=created.endpoint.id), metadata=auth(key))
    assert got.endpoint.last_error == "HTTP 500"
    assert got.endpoint.queued == 1  # kept, for when it is enabled again
    # Recorded and counted as a disabled attempt, as a 410's disable is.
    assert sample("trackd_webhook_attempts_total", outcome="disabled") - disabled_before == 1
    newest = (await store.deliveries.attempts(created.endpoint.id, 1))[0]
    assert (newest["outcome"], newest["error"], newest["msg_id"]) == \
        ("disabled", "failing 5 days: HTTP 500", "")
