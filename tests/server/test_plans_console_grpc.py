"""Tracking plans as the console sees them, over real gRPC and a real database: Subscribe
carries each stored event's plan version and violations; a blocking plan's refusal is a
``quarantined`` decision in WatchDecisions (the violations, never the body), a call the
gateway carries in TrackEvents included; GetOverview
counts the hour's violations per kind and event name."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import timestamp_pb2

from tests.helpers import KeyFactory
from tests.server.helpers import auth, batch, event, track
from tests.server.plan_helpers import set_plan
from tests.server.test_decisions_grpc import collect, metadata
from tests.server.test_subscribe import since, take
from tests.server.test_track_events import carried
from tests.server.test_tracking_plans_grpc import kind
from trackd.server.auth import ALL_SCOPES
from trackd.storage import Store
from trackd.v1 import (
    decisions_pb2,
    decisions_pb2_grpc,
    plans_pb2,
    tracking_pb2,
    tracking_pb2_grpc,
)

Stub = tracking_pb2_grpc.TrackingServiceStub


async def test_subscribe_carries_plan_violations_in_observe_mode(
        tracking: Stub, store: Store, make_key: KeyFactory) -> None:
    key = await make_key("acme", ALL_SCOPES)
    start = datetime.now(UTC) - timedelta(seconds=1)
    await tracking.TrackEvent(track(event(event_id="before", properties={"plan": 2})),
                              metadata=auth(key))
    version = await set_plan(store)
    await tracking.TrackEvent(track(event(event_id="bad", properties={"plan": 2})),
                              metadata=auth(key))
    await tracking.TrackEvent(track(event(event_id="good", properties={"plan": "pro"})),
                              metadata=auth(key))
    call = tracking.Subscribe(since(start), metadata=auth(key))
    before, bad, good = await take(call, 3)
    call.cancel()
    assert [r.event.event_id for r in (before, bad, good)] == ["before", "bad", "good"]
    assert (before.plan_version, list(before.plan_violations)) == (0, [])
    assert bad.plan_version == version
    assert list(bad.plan_violations) == [plans_pb2.PlanViolation(
        kind=kind("wrong_type"), field="properties.plan", message="must be of type string")]
    assert (good.plan_version, list(good.plan_violations)) == (version, [])


async def test_block_mode_refusal_is_a_quarantined_decision_and_counted(
        channel: grpc.aio.Channel, tracking: Stub, store: Store,
        make_key: KeyFactory) -> None:
    key = await make_key("acme", ALL_SCOPES)
    stub = decisions_pb2_grpc.DecisionServiceStub(channel)
    start = timestamp_pb2.Timestamp()
    start.FromSeconds(int(time.time()) - 60)
    watch = stub.WatchDecisions(decisions_pb2.WatchDecisionsRequest(since=start),
                                metadata=auth(key))
    # Block mode, unplanned events flagged: an unplanned event is stored with its
    # violation, a schema violation refuses the request and quarantines its events.
    await set_plan(store, enforcement="block", unplanned="flag")
    for event_id in ("s-1", "s-2"):
        await tracking.TrackEvent(track(event("signup", event_id=event_id)),
                                  metadata=metadata(key, f"req-{event_id}"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tracking.BatchTrack(batch([
            event(event_id="q-1", properties={"plan": 2, "source": "secret-campaign"}),
            event(event_id="q-2", properties={"source": "ads"})]),
            metadata=metadata(key, "req-blocked", "cueflow"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A call carried by the gateway's TrackEvents is recorded with its own request id.
    answer = await tracking.TrackEvents(tracking_pb2.TrackEventsRequest(calls=[carried(
        track(event(event_id="q-3", properties={"plan": 3})),
        metadata(key, "req-carried", "flywheel"))]))
    assert answer.results[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert len(await store.quarantine.list("acme")) == 3

    seen = await collect(watch, {"req-blocked", "req-carried"})
    watch.cancel()
    decision = seen["req-blocked"]
    assert (decision.kind, decision.source, decision.method, decision.code, decision.reason,
            decision.field, decision.description, decision.events) == (
        decisions_pb2.DECISION_KIND_QUARANTINED, "cueflow", "BatchTrack",
        grpc.StatusCode.INVALID_ARGUMENT.value[0], "TRACKING_PLAN_VIOLATION",
        "events[0].properties.plan", "must be of type string", 2)
    assert list(decision.plan_violations) == [
        plans_pb2.PlanViolation(kind=kind("wrong_type"), field="events[0].properties.plan",
                                message="must be of type string"),
        plans_pb2.PlanViolation(kind=kind("missing_required"),
                                field="events[1].properties.plan",
                                message="is required by the tracking plan")]
    assert list(decision.violations) == [
        "events[0].properties.plan: must be of type string",
        "events[1].properties.plan: is required by the tracking plan"]
    via_gateway = seen["req-carried"]
    assert (via_gateway.kind, via_gateway.source, via_gateway.method,
            list(via_gateway.plan_violations)) == (
        decisions_pb2.DECISION_KIND_QUARANTINED, "flywheel", "TrackEvent",
        [plans_pb2.PlanViolation(kind=kind("wrong_type"), field="event.properties.plan",
                                 message="must be of type string")])
    wire = decision.SerializeToString()
    assert b"secret-campaign" not in wire
    assert b"ads" not in wire

    overview = await stub.GetOverview(decisions_pb2.GetOverviewRequest(), metadata=auth(key))
    assert [(n.name, n.count) for n in overview.top_violations] == [
        ("unplanned_event: signup", 2), ("wrong_type: user_signed_up", 2),
        ("missing_required: user_signed_up", 1)]
    refusals = {(count.name, count.count) for minute in overview.minutes
                for count in minute.refused}
    assert refusals == {("TRACKING_PLAN_VIOLATION", 2)}
    assert sum(minute.stored for minute in overview.minutes) == 2


async def test_top_violations_are_at_most_ten(
        channel: grpc.aio.Channel, tracking: Stub, store: Store,
        make_key: KeyFactory) -> None:
    key = await make_key("acme", ALL_SCOPES)
    await set_plan(store)  # observe, unplanned events flagged
    for i in range(12):  # twelve unplanned names, the last ones twice
        for _ in range(2 if i >= 9 else 1):
            await tracking.TrackEvent(track(event(f"n{i:02d}")), metadata=auth(key))
    stub = decisions_pb2_grpc.DecisionServiceStub(channel)
    expected = [(f"unplanned_event: n{i:02d}", 2) for i in (9, 10, 11)] + [
        (f"unplanned_event: n{i:02d}", 1) for i in range(7)]
    deadline = time.monotonic() + 60
    while True:  # the recorder flushes off the call's path: wait until it has
        overview = await stub.GetOverview(decisions_pb2.GetOverviewRequest(),
                                          metadata=auth(key))
        got = [(n.name, n.count) for n in overview.top_violations]
        if got == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert got == expected
