"""TrackingService.TrackEvents over a real gRPC server and a real database: several
TrackEvent calls carried in one RPC, each with its own metadata and its own result.

Each carried call must answer exactly what the same TrackEvent call of its own answers
(its key, scopes, validation, idempotency and durability), whatever the others carry.
"""

from __future__ import annotations

import dataclasses
import logging

import grpc
import pytest
from google.rpc import status_pb2
from prometheus_client import generate_latest

from tests.helpers import KeyFactory, stored_events
from tests.scrape import delta, parse
from tests.server.helpers import (
    DB_DOWN_AUTH,
    DB_DOWN_WRITE,
    INVALID_KEY,
    MISSING_KEY,
    SCOPE_MISSING,
    RichError,
    auth,
    decode,
    event,
    invalid,
    rpc_error,
    track,
)
from trackd.server.app import ServerConfig, TrackdServer, create_server
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub
KEY = "0b8f2a3c-0a0e-4c55-9d8e-7b1f3c2d4e5f"
REUSE = invalid("idempotency_key", "was already used with a different request",
                reason="IDEMPOTENCY_KEY_REUSE")


def carried(request: tracking_pb2.TrackEventRequest,
            metadata: tuple[tuple[str, str], ...]) -> tracking_pb2.CarriedTrackEvent:
    return tracking_pb2.CarriedTrackEvent(
        metadata=[tracking_pb2.MetadataEntry(key=k, value=v) for k, v in metadata],
        request=request)


def outcome(result: tracking_pb2.TrackEventResult) -> tracking_pb2.TrackEventResponse | RichError:
    """The response, or the error decoded as a TrackEvent call's own would be."""
    if result.HasField("response"):
        return result.response
    error = result.error
    status = status_pb2.Status(code=error.code, message=error.message, details=error.details)
    code = next(c for c in grpc.StatusCode if c.value[0] == error.code)
    return decode(grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(),
        grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString())),
        error.message))


async def test_each_carried_call_gets_its_own_result_and_only_good_ones_are_stored(
    tracking: Stub, store: Store, api_key: str, make_key: KeyFactory
) -> None:
    other_project = await make_key("globex")
    read_only = await make_key(scopes=("users:read",))
    calls = [
        carried(track(event(event_id="ok-1")), auth(api_key)),
        carried(track(event(event_id="bad-key")), auth("tk_not_a_key")),
        carried(track(event(event_id="no-key")), ()),
        carried(track(event(event_id="no-scope")), auth(read_only)),
        carried(track(event("", event_id="no-name")), auth(api_key)),
        carried(track(event(event_id="ok-2")), auth(other_project)),
    ]

    response = await tracking.TrackEvents(tracking_pb2.TrackEventsRequest(calls=calls))

    assert [outcome(result) for result in response.results] == [
        tracking_pb2.TrackEventResponse(event_id="ok-1"),
        INVALID_KEY,
        MISSING_KEY,
        SCOPE_MISSING,
        invalid("event.name", "is required"),
        tracking_pb2.TrackEventResponse(event_id="ok-2"),
    ]
    assert sorted((d["project_id"], d["event_id"]) for d in await stored_events(store)) == [
        ("acme", "ok-1")]
    assert [d["event_id"] for d in await stored_events(store, "globex")] == ["ok-2"]


async def test_a_carried_call_answers_what_the_same_trackevent_call_answers(
    tracking: Stub, store: Store, api_key: str
) -> None:
    await tracking.TrackEvent(track(event(event_id="seen")), metadata=auth(api_key))
    calls = [carried(track(event(event_id="seen")), auth(api_key)),
             carried(track(event(event_id="new")), auth(api_key))]

    response = await tracking.TrackEvents(tracking_pb2.TrackEventsRequest(calls=calls))

    assert [outcome(r) for r in response.results] == [
        tracking_pb2.TrackEventResponse(event_id="seen", duplicate=True),
        tracking_pb2.TrackEventResponse(event_id="new")]
    assert sorted(d["event_id"] for d in await stored_events(store)) == ["new", "seen"]


async def test_idempotency_keys_are_per_carried_call_and_shared_with_trackevent(
    tracking: Stub, store: Store, api_key: str
) -> None:
    first = tracking_pb2.TrackEventRequest(idempotency_key=KEY)
    first.event.CopyFrom(event())  # no event id: derived from the idempotency key
    response = await tracking.TrackEvents(tracking_pb2.TrackEventsRequest(
        calls=[carried(first, auth(api_key))]))
    (stored,) = [outcome(r) for r in response.results]

    replay = await tracking.TrackEvent(first, metadata=auth(api_key))
    different = track(event("other"), KEY)
    reused = await tracking.TrackEvents(tracking_pb2.TrackEventsRequest(
        calls=[carried(different, auth(api_key)), carried(first, auth(api_key))]))

    assert replay == stored
    assert [outcome(r) for r in reused.results] == [REUSE, stored]
    assert len(await stored_events(store)) == 1


async def test_database_down_makes_every_carried_call_unavailable_and_stores_nothing(
    events_down: tuple[TrackdServer, Stub], store: Store, api_key: str
) -> None:
    srv, broken = events_down
    calls = [carried(track(event(event_id=f"lost-{i}")), auth(api_key)) for i in range(3)]

    response = await broken.TrackEvents(tracking_pb2.TrackEventsRequest(calls=calls))

    assert [outcome(r) for r in response.results] == [DB_DOWN_WRITE] * 3
    assert await stored_events(store) == []
    assert srv.pipeline.stats.events_written == 0


@pytest.mark.parametrize("count", [0, 1001])
async def test_no_call_or_too_many_is_invalid_and_stores_nothing(
    tracking: Stub, store: Store, api_key: str, count: int
) -> None:
    calls = [carried(track(event(event_id=f"e-{i}")), auth(api_key)) for i in range(count)]

    error = await rpc_error(tracking.TrackEvents(tracking_pb2.TrackEventsRequest(calls=calls)))

    assert error == invalid("calls", f"TrackEvents carries 1 to 1000 calls, got {count}")
    assert await stored_events(store) == []


async def test_while_the_database_is_known_down_each_carried_call_is_unavailable(
    store: Store, server_config: ServerConfig, api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The AvailabilityGate answers each carried call UNAVAILABLE + RetryInfo, counted
    as a TrackEvent of its own and listed so in the TrackEvents line; nothing is stored."""
    caplog.set_level(logging.INFO, logger="trackd.access")
    config = dataclasses.replace(server_config, health_interval_seconds=3600)
    srv = await create_server(store, config)
    try:
        srv.monitor.database_up = False  # as after a failed ping; no ping for an hour
        before = parse(generate_latest().decode())
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            response = await tracking_pb2_grpc.TrackingServiceStub(channel).TrackEvents(
                tracking_pb2.TrackEventsRequest(calls=[
                    carried(track(event()), (*auth(api_key), ("x-request-id", f"down-{i}"),
                                             ("trackd-dialect", "vibefollow")))
                    for i in range(3)]))
        after = parse(generate_latest().decode())
    finally:
        await srv.stop(grace=5)
    assert [outcome(result) for result in response.results] == [DB_DOWN_AUTH] * 3
    assert await stored_events(store) == []
    tracking = {"service": "trackd.v1.TrackingService", "method": "TrackEvent"}
    assert delta(before, after, "trackd_grpc_requests_total", **tracking,
                 code="UNAVAILABLE") == 3
    assert delta(before, after, "trackd_grpc_requests_total", service=tracking["service"],
                 method="TrackEvents", code="OK") == 1
    (line,) = [fields for record in caplog.records if record.name == "trackd.access"
               and (fields := getattr(record, "fields", {})).get("kind") == "grpc"]
    # Refused before it is read, as a unary TrackEvent is by the gate: no events noted.
    assert (line["method"], line["code"], line["events"]) == ("TrackEvents", "OK", 0)
    assert sorted((call["request_id"], call["code"], call["source"], call["project"],
                   call["events"]) for call in line["calls"]) == [
        (f"down-{i}", "UNAVAILABLE", "vibefollow", None, 0) for i in range(3)]


async def test_a_large_carrier_lists_its_calls_in_lines_of_at_most_64(
    tracking: Stub, api_key: str, store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    """150 carried calls: the TrackEvents line lists 64 and says 150; two grpc_calls
    lines of the same request id list the other 86; every call once."""
    caplog.set_level(logging.INFO, logger="trackd.access")
    response = await tracking.TrackEvents(tracking_pb2.TrackEventsRequest(calls=[
        carried(track(event(user=f"u-{i}")), (*auth(api_key), ("x-request-id", f"big-{i}")))
        for i in range(150)]), metadata=[("x-request-id", "carrier-1")])
    assert all(result.HasField("response") for result in response.results)
    assert len(await stored_events(store)) == 150
    lines = [fields for record in caplog.records if record.name == "trackd.access"
             and (fields := getattr(record, "fields", {})).get("kind") in ("grpc", "grpc_calls")]
    assert [(line["kind"], line["request_id"], len(line["calls"])) for line in lines] == [
        ("grpc", "carrier-1", 64), ("grpc_calls", "carrier-1", 64),
        ("grpc_calls", "carrier-1", 22)]
    first = lines[0]
    assert (first["method"], first["code"], first["events"], first["calls_total"]) == (
        "TrackEvents", "OK", 150, 150)
    assert sorted(call["request_id"] for line in lines for call in line["calls"]) == sorted(
        f"big-{i}" for i in range(150))
    messages = [record.getMessage() for record in caplog.records
                if getattr(record, "fields", {}).get("kind") == "grpc_calls"]
    assert messages == ["trackd.v1.TrackingService/TrackEvents calls 65-128 of 150",
                        "trackd.v1.TrackingService/TrackEvents calls 129-150 of 150"]
