"""Idempotency leases across instances: a running request renews its short lease, so
another instance never runs its key meanwhile; a dead holder's key is taken over once
its lease runs out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from trackd.server.idempotency import IdempotencyGuard, fingerprint
from trackd.storage import Store
from trackd.v1 import tracking_pb2

REQUEST = tracking_pb2.TrackEventRequest(idempotency_key="k-1")
LEASE = timedelta(seconds=1.5)


async def test_a_running_request_keeps_its_key_past_the_lease(store: Store) -> None:
    """Two guards (two instances) on one key: the first runs three leases long, renewing;
    the second waits and replays its response instead of running it again."""
    first, second = (IdempotencyGuard(store.idempotency, lease=LEASE, wait_for_in_flight=10)
                     for _ in range(2))
    runs: list[str] = []

    async def slow() -> tracking_pb2.TrackEventResponse:
        runs.append("first")
        await asyncio.sleep(3 * LEASE.total_seconds())
        return tracking_pb2.TrackEventResponse(event_id="from-first")

    async def other() -> tracking_pb2.TrackEventResponse:
        runs.append("second")
        return tracking_pb2.TrackEventResponse(event_id="from-second")

    running = asyncio.create_task(first.run("acme", "TrackEvent", "k-1", REQUEST,
                                            tracking_pb2.TrackEventResponse, slow))
    await asyncio.sleep(LEASE.total_seconds() / 2)
    replayed = await second.run("acme", "TrackEvent", "k-1", REQUEST,
                                tracking_pb2.TrackEventResponse, other)
    assert (await running).event_id == "from-first"
    assert replayed.event_id == "from-first"
    assert runs == ["first"]


async def test_a_dead_instances_key_is_taken_over_after_its_lease(store: Store) -> None:
    # What a crashed instance leaves: a pending record, its lease running, never renewed.
    await store.idempotency.reserve("acme", "TrackEvent", "k-1", fingerprint(REQUEST),
                                    datetime.now(UTC), LEASE, owner="dead-instance")
    guard = IdempotencyGuard(store.idempotency, lease=LEASE, wait_for_in_flight=10)

    async def run() -> tracking_pb2.TrackEventResponse:
        return tracking_pb2.TrackEventResponse(event_id="taken-over")

    response = await guard.run("acme", "TrackEvent", "k-1", REQUEST,
                               tracking_pb2.TrackEventResponse, run)
    assert response.event_id == "taken-over"
