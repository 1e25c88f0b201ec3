"""DecisionService on the real server and database: a refused call, a duplicate and a
carried call's refusal reach WatchDecisions (recorded off the acknowledgement path, by
whichever instance) with their request id, door and what the refusal names; GetOverview
counts the minute; both need ``events:read`` and see only the key's project."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from tests.helpers import KeyFactory
from tests.server.helpers import auth, event, track
from trackd.server.auth import ALL_SCOPES, DEFAULT_SCOPES
from trackd.server.decisions import DecisionRecorder, RecorderLimits
from trackd.server.errors import InvalidArgument
from trackd.server.observability import CallInfo
from trackd.storage import Store
from trackd.v1 import decisions_pb2, decisions_pb2_grpc, tracking_pb2, tracking_pb2_grpc

DEADLINE_SECONDS = 60.0  # a bound for a stuck stream under load, never asserted on


def metadata(key: str, request_id: str, dialect: str = "") -> tuple[tuple[str, str], ...]:
    extra = (("trackd-dialect", dialect),) if dialect else ()
    return (*auth(key), ("x-request-id", request_id), *extra)


async def collect(call: Any, wanted: set[str]) -> dict[str, decisions_pb2.Decision]:
    """Decisions read from ``call`` until every request id in ``wanted`` came."""
    seen: dict[str, decisions_pb2.Decision] = {}
    async with asyncio.timeout(DEADLINE_SECONDS):
        async for item in call:
            if item.HasField("decision") and item.decision.request_id in wanted:
                seen[item.decision.request_id] = item.decision
                if set(seen) == wanted:
                    return seen
    raise AssertionError(f"the stream ended before {wanted - set(seen)}")


async def test_decisions_stream_and_overview(
        channel: grpc.aio.Channel, tracking: tracking_pb2_grpc.TrackingServiceStub,
        make_key: KeyFactory) -> None:
    key = await make_key("acme", ALL_SCOPES)
    other = await make_key("other", ALL_SCOPES)
    stub = decisions_pb2_grpc.DecisionServiceStub(channel)
    since = timestamp_pb2.Timestamp()
    since.FromSeconds(int(time.time()) - 60)  # and from then: nothing is missed opening it
    watch = stub.WatchDecisions(decisions_pb2.WatchDecisionsRequest(since=since),
                                metadata=auth(key))

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tracking.TrackEvent(track(event("x" * 600)),
                                  metadata=metadata(key, "req-invalid", "vibefollow"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await tracking.TrackEvent(track(event("signup", event_id="dup-1")),
                              metadata=metadata(key, "req-first"))
    again = await tracking.TrackEvent(track(event("signup", event_id="dup-1")),
                                      metadata=metadata(key, "req-dup"))
    assert again.duplicate
    carried = await tracking.TrackEvents(tracking_pb2.TrackEventsRequest(calls=[
        tracking_pb2.CarriedTrackEvent(
            metadata=[tracking_pb2.MetadataEntry(key=k, value=v)
                      for k, v in metadata(key, "req-carried", "flywheel")],
            request=track(event("ok", user="")))]))
    assert carried.results[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    with pytest.raises(grpc.aio.AioRpcError):  # another project's: not in acme's stream
        await tracking.TrackEvent(track(event("y" * 600)),
                                  metadata=metadata(other, "req-other"))

    seen = await collect(watch, {"req-invalid", "req-dup", "req-carried"})
    watch.cancel()
    invalid, dup, carried_refusal = seen["req-invalid"], seen["req-dup"], seen["req-carried"]
    assert (invalid.kind, invalid.source, invalid.method, invalid.code, invalid.reason,
            invalid.field, invalid.events) == (
        decisions_pb2.DECISION_KIND_REFUSED, "vibefollow", "TrackEvent",
        grpc.StatusCode.INVALID_ARGUMENT.value[0], "INVALID_ARGUMENT", "event.name", 1)
    assert invalid.description
    assert "x" * 20 not in invalid.description
    assert invalid.id
    assert (dup.kind, dup.source, list(dup.event_ids), list(dup.event_names), dup.code) == (
        decisions_pb2.DECISION_KIND_DUPLICATE, "grpc", ["dup-1"], ["signup"], 0)
    assert (carried_refusal.kind, carried_refusal.source, carried_refusal.reason) == (
        decisions_pb2.DECISION_KIND_REFUSED, "flywheel", "INVALID_ARGUMENT")
    assert carried_refusal.field.startswith("event.")

    overview = await stub.GetOverview(decisions_pb2.GetOverviewRequest(), metadata=auth(key))
    assert len(overview.minutes) == 60
    stored = sum(minute.stored for minute in overview.minutes)
    duplicates = sum(minute.duplicates for minute in overview.minutes)
    refusals = {(count.name, count.count) for minute in overview.minutes
                for count in minute.refused}
    assert (stored, duplicates, refusals) == (1, 1, {("INVALID_ARGUMENT", 2)})
    assert [(n.name, n.count) for n in overview.top_event_names] == [("signup", 1)]
    starts = [minute.minute.seconds for minute in overview.minutes]
    assert starts == sorted(starts)
    assert all(b - a == 60 for a, b in itertools.pairwise(starts))


async def test_decisions_need_events_read(channel: grpc.aio.Channel,
                                          make_key: KeyFactory) -> None:
    key = await make_key("acme", DEFAULT_SCOPES)
    stub = decisions_pb2_grpc.DecisionServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as overview:
        await stub.GetOverview(decisions_pb2.GetOverviewRequest(), metadata=auth(key))
    assert overview.value.code() == grpc.StatusCode.PERMISSION_DENIED
    watch = stub.WatchDecisions(decisions_pb2.WatchDecisionsRequest(), metadata=auth(key))
    with pytest.raises(grpc.aio.AioRpcError) as watched:
        await watch.read()
    assert watched.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.GetOverview(decisions_pb2.GetOverviewRequest())
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_stream_says_when_decisions_were_not_recorded(
        channel: grpc.aio.Channel, store: Store, make_key: KeyFactory) -> None:
    """Another instance (a recorder of its own on the same database) overflows its queue:
    this server's stream carries the decision it kept and the sampling note."""
    key = await make_key("acme", ALL_SCOPES)
    stub = decisions_pb2_grpc.DecisionServiceStub(channel)
    since = timestamp_pb2.Timestamp()
    since.FromSeconds(int(time.time()) - 60)
    watch = stub.WatchDecisions(decisions_pb2.WatchDecisionsRequest(since=since),
                                metadata=auth(key))
    other = DecisionRecorder(store.decisions, RecorderLimits(queue=1))
    for i in range(4):
        other.refused(InvalidArgument.one("event.name", "is required"), CallInfo(
            service="trackd.v1.TrackingService", method="BatchTrack", request_id=f"r{i}",
            source="cueflow", bytes_in=1, project="acme"))
    await other.flush()
    items = []
    async with asyncio.timeout(DEADLINE_SECONDS):
        async for item in watch:
            items.append(item)
            if len(items) == 2:
                break
    watch.cancel()
    # In the order they were recorded: the decision kept, then the note.
    assert items[0].decision.request_id == "r0"
    assert items[1].sampling.not_recorded == 3
