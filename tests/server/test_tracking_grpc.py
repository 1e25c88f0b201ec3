"""trackd.v1.TrackingService over a real gRPC server and a real database.

What a call stores, what it answers, who may call it, whose data it touches, and the
rich ``google.rpc`` details its errors carry; plus health checking and reflection.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.helpers import KeyFactory, stored_events
from tests.server.helpers import (
    INVALID_KEY,
    MISSING_KEY,
    SCOPE_MISSING,
    RichError,
    auth,
    batch,
    event,
    invalid,
    rpc_error,
    to_ms,
    track,
    typed,
)
from trackd.server.auth import issue_key
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub
SERVICE = "trackd.v1.TrackingService"


# --- TrackEvent -------------------------------------------------------------------------


async def test_track_event_stores_exactly_one_document_with_every_field(
    tracking: Stub, store: Store, api_key: str
) -> None:
    ev = event(
        "feature_used",
        event_id="evt-1",
        user="user-42",
        anonymous_id="anon-7",
        timestamp=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_456_789),
        properties={"feature": "export", "count": 3, "ratio": 0.25, "ok": True, "none": None,
                    "tags": ["a", 2, 2.5], "nested": {"depth": 2, "list": [{"n": 1}]}},
        context=tracking_pb2.EventContext(namespace="ui", session_id="sess-1", source="web",
                                          website_id="site-1"),
    )
    before = to_ms(datetime.now(UTC))

    response = await tracking.TrackEvent(track(ev), metadata=auth(api_key))

    after = datetime.now(UTC)
    assert response == tracking_pb2.TrackEventResponse(event_id="evt-1", duplicate=False)
    (doc,) = await stored_events(store)
    received_at = doc.pop("received_at")
    assert before <= received_at <= after
    assert re.fullmatch("[0-9a-f]{32}", doc.pop("request_id"))  # the call's, made by trackd
    assert doc == {
        "project_id": "acme",
        "event_id": "evt-1",
        "name": "feature_used",
        "user_id": "user-42",
        "anonymous_id": "anon-7",
        "timestamp": datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC),
        "properties": {"feature": "export", "count": 3, "ratio": 0.25, "ok": True,
                       "none": None, "tags": ["a", 2, 2.5],
                       "nested": {"depth": 2, "list": [{"n": 1}]}},
        "namespace": "ui",
        "session_id": "sess-1",
        "source": "web",
        "website_id": "site-1",
        "via": "grpc",
    }
    # Integral numbers are stored as integers, the others stay doubles.
    assert typed(doc["properties"]) == typed({
        "feature": "export", "count": 3, "ratio": 0.25, "ok": True, "none": None,
        "tags": ["a", 2, 2.5], "nested": {"depth": 2, "list": [{"n": 1}]}})


async def test_track_event_defaults_timestamp_to_receive_time_and_generates_an_id(
    tracking: Stub, store: Store, api_key: str
) -> None:
    before = to_ms(datetime.now(UTC))

    response = await tracking.TrackEvent(track(event("page_viewed", user="", anonymous_id="a-1")),
                                         metadata=auth(api_key))

    after = datetime.now(UTC)
    assert response.duplicate is False
    assert uuid.UUID(response.event_id).version == 4
    (doc,) = await stored_events(store)
    assert before <= doc["received_at"] <= after
    assert re.fullmatch("[0-9a-f]{32}", doc.pop("request_id"))
    assert doc == {
        "project_id": "acme",
        "event_id": response.event_id,
        "name": "page_viewed",
        "user_id": None,
        "anonymous_id": "a-1",
        "timestamp": doc["received_at"],
        "received_at": doc["received_at"],
        "properties": {},
        "via": "grpc",
    }


async def test_numbers_keep_their_kind_integers_up_to_2_pow_53(
    tracking: Stub, store: Store, api_key: str
) -> None:
    properties = {"zero": 0.0, "neg": -7.0, "max_exact": 2.0**53, "min_exact": -(2.0**53),
                  "beyond": 2.0**60, "half": 0.5, "list": [1.0, 1.5]}

    await tracking.TrackEvent(track(event(properties=properties)), metadata=auth(api_key))

    (doc,) = await stored_events(store)
    assert typed(doc["properties"]) == typed({
        "zero": 0, "neg": -7, "max_exact": 2**53, "min_exact": -(2**53),
        "beyond": 2.0**60, "half": 0.5, "list": [1, 1.5]})


async def test_repeated_event_id_is_acknowledged_as_duplicate_and_stored_once(
    tracking: Stub, store: Store, api_key: str
) -> None:
    first = await tracking.TrackEvent(track(event(event_id="same", properties={"n": 1})),
                                      metadata=auth(api_key))
    second = await tracking.TrackEvent(track(event(event_id="same", properties={"n": 2})),
                                       metadata=auth(api_key))

    assert first == tracking_pb2.TrackEventResponse(event_id="same", duplicate=False)
    assert second == tracking_pb2.TrackEventResponse(event_id="same", duplicate=True)
    (doc,) = await stored_events(store)
    assert (doc["event_id"], doc["properties"]) == ("same", {"n": 1})


async def test_events_without_an_id_are_never_deduplicated(
    tracking: Stub, store: Store, api_key: str
) -> None:
    first = await tracking.TrackEvent(track(event()), metadata=auth(api_key))
    second = await tracking.TrackEvent(track(event()), metadata=auth(api_key))

    assert first.event_id != second.event_id
    assert (first.duplicate, second.duplicate) == (False, False)
    assert [doc["event_id"] for doc in await stored_events(store)] == [first.event_id,
                                                                       second.event_id]


# --- BatchTrack -------------------------------------------------------------------------


async def test_batch_of_500_events_is_stored_whole(
    tracking: Stub, store: Store, api_key: str
) -> None:
    events = [event(f"e{i}", event_id=f"id-{i:03}", properties={"i": i}) for i in range(500)]

    response = await tracking.BatchTrack(batch(events), metadata=auth(api_key))

    assert response == tracking_pb2.BatchTrackResponse(
        event_ids=[f"id-{i:03}" for i in range(500)], stored_count=500, duplicate_count=0)
    docs = sorted(await stored_events(store), key=lambda doc: doc["event_id"])
    assert [(d["event_id"], d["name"], d["properties"]) for d in docs] == [
        (f"id-{i:03}", f"e{i}", {"i": i}) for i in range(500)]
    assert {d["project_id"] for d in docs} == {"acme"}


@pytest.mark.parametrize("count", [0, 501])
async def test_batch_outside_1_to_500_events_is_rejected(
    tracking: Stub, store: Store, api_key: str, count: int
) -> None:
    events = [event(event_id=f"id-{i}") for i in range(count)]

    error = await rpc_error(tracking.BatchTrack(batch(events), metadata=auth(api_key)))

    assert error == RichError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"events: a batch holds 1 to 500 events, got {count}",
        violations=(("events", f"a batch holds 1 to 500 events, got {count}"),),
        error_info=("INVALID_ARGUMENT", "trackd", ()),
        detail_types=("BadRequest", "ErrorInfo"),
    )
    assert await stored_events(store) == []


@pytest.mark.parametrize(("bad", "field", "description"), [
    pytest.param(event(user=""), "events[3].external_user_id",
                 "is required when anonymous_id is empty", id="no-user-ids"),
    pytest.param(event("n" * 513), "events[3].name", "must be at most 512 characters",
                 id="name-too-long"),
])
async def test_one_bad_event_rejects_the_whole_batch(
    tracking: Stub, store: Store, api_key: str,
    bad: tracking_pb2.Event, field: str, description: str,
) -> None:
    events = [event(event_id=f"id-{i}") for i in range(50)]
    events[3] = bad

    error = await rpc_error(tracking.BatchTrack(batch(events), metadata=auth(api_key)))

    assert error == invalid(field, description)
    assert await stored_events(store) == []


async def test_batch_counts_already_stored_and_repeated_ids_as_duplicates(
    tracking: Stub, store: Store, api_key: str
) -> None:
    await tracking.TrackEvent(track(event(event_id="old", properties={"v": "first"})),
                              metadata=auth(api_key))
    events = [event(event_id="new-1"), event(event_id="old", properties={"v": "again"}),
              event(event_id="new-2"), event(event_id="new-1")]

    response = await tracking.BatchTrack(batch(events), metadata=auth(api_key))

    assert response == tracking_pb2.BatchTrackResponse(
        event_ids=["new-1", "old", "new-2", "new-1"], stored_count=2, duplicate_count=2)
    docs = {doc["event_id"]: doc for doc in await stored_events(store)}
    assert sorted(docs) == ["new-1", "new-2", "old"]
    assert docs["old"]["properties"] == {"v": "first"}


async def test_batch_generates_distinct_ids_for_events_without_one(
    tracking: Stub, store: Store, api_key: str
) -> None:
    response = await tracking.BatchTrack(batch([event(), event(event_id="given"), event()]),
                                         metadata=auth(api_key))

    generated = [response.event_ids[0], response.event_ids[2]]
    assert response.event_ids[1] == "given"
    assert len(set(generated)) == 2
    assert all(uuid.UUID(i).version == 4 for i in generated)
    assert (response.stored_count, response.duplicate_count) == (3, 0)
    assert sorted(d["event_id"] for d in await stored_events(store)) == sorted(
        response.event_ids)


# --- Authentication and scopes ------------------------------------------------------------


def _call(tracking: Stub, rpc: str, metadata: tuple[tuple[str, str], ...]) -> Any:
    if rpc == "TrackEvent":
        return tracking.TrackEvent(track(event(event_id="x")), metadata=metadata)
    return tracking.BatchTrack(batch([event(event_id="x")]), metadata=metadata)


RPCS = ["TrackEvent", "BatchTrack"]


@pytest.mark.parametrize("rpc", RPCS)
@pytest.mark.parametrize("metadata", [
    pytest.param((), id="no-metadata"),
    pytest.param((("authorization", "Bearer "),), id="empty-bearer"),
    pytest.param((("authorization", "Basic dXNlcjpwYXNz"),), id="basic-scheme"),
    pytest.param((("x-api-key", "trk_whatever"),), id="other-header"),
])
async def test_call_without_a_bearer_key_is_unauthenticated(
    tracking: Stub, store: Store, api_key: str, rpc: str,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    assert await rpc_error(_call(tracking, rpc, metadata)) == MISSING_KEY
    assert await stored_events(store) == []


@pytest.mark.parametrize("rpc", RPCS)
async def test_unknown_key_is_unauthenticated(
    tracking: Stub, store: Store, api_key: str, rpc: str
) -> None:
    unknown = "trk_" + secrets.token_urlsafe(32)  # well-formed, never issued

    assert await rpc_error(_call(tracking, rpc, auth(unknown))) == INVALID_KEY
    assert await stored_events(store) == []


@pytest.mark.parametrize("rpc", RPCS)
async def test_revoked_key_is_unauthenticated(tracking: Stub, store: Store, rpc: str) -> None:
    issued = await issue_key(store.keys, "acme")
    await tracking.TrackEvent(track(event(event_id="before")), metadata=auth(issued.secret))
    assert await store.keys.revoke(issued.record.key_id) is True

    assert await rpc_error(_call(tracking, rpc, auth(issued.secret))) == INVALID_KEY
    assert [d["event_id"] for d in await stored_events(store)] == ["before"]


@pytest.mark.parametrize("rpc", RPCS)
async def test_key_without_track_events_scope_is_permission_denied(
    tracking: Stub, store: Store, make_key: KeyFactory, rpc: str
) -> None:
    key = await make_key(scopes=())

    assert await rpc_error(_call(tracking, rpc, auth(key))) == SCOPE_MISSING
    assert await stored_events(store) == []


async def test_scheme_is_case_insensitive(tracking: Stub, store: Store, api_key: str) -> None:
    response = await tracking.TrackEvent(track(event(event_id="lower")),
                                         metadata=(("authorization", f"bearer {api_key}"),))

    assert response == tracking_pb2.TrackEventResponse(event_id="lower", duplicate=False)
    assert [d["event_id"] for d in await stored_events(store)] == ["lower"]


# --- Tenant isolation ---------------------------------------------------------------------


async def test_a_key_writes_only_its_own_project(
    tracking: Stub, store: Store, make_key: KeyFactory
) -> None:
    key_a = await make_key("project-a")
    await make_key("project-b")

    await tracking.TrackEvent(track(event(event_id="one")), metadata=auth(key_a))
    await tracking.BatchTrack(batch([event(event_id="two"), event(event_id="three")]),
                              metadata=auth(key_a))

    assert sorted(d["event_id"] for d in await stored_events(store, "project-a")) == [
        "one", "three", "two"]
    assert await stored_events(store, "project-b") == []
    assert await store.db["events"].distinct("project_id") == ["project-a"]


async def test_same_event_id_in_two_projects_is_two_documents(
    tracking: Stub, store: Store, make_key: KeyFactory
) -> None:
    key_a, key_b = await make_key("project-a"), await make_key("project-b")

    in_a = await tracking.TrackEvent(track(event(event_id="shared", properties={"p": "a"})),
                                     metadata=auth(key_a))
    in_b = await tracking.TrackEvent(track(event(event_id="shared", properties={"p": "b"})),
                                     metadata=auth(key_b))
    again_in_b = await tracking.TrackEvent(track(event(event_id="shared")), metadata=auth(key_b))

    assert in_a == in_b == tracking_pb2.TrackEventResponse(event_id="shared", duplicate=False)
    assert again_in_b == tracking_pb2.TrackEventResponse(event_id="shared", duplicate=True)
    assert [d["properties"] for d in await stored_events(store, "project-a")] == [{"p": "a"}]
    assert [d["properties"] for d in await stored_events(store, "project-b")] == [{"p": "b"}]


# --- Rich error details on the wire -------------------------------------------------------


async def test_error_details_travel_in_the_grpc_status_details_bin_trailer(
    tracking: Stub, api_key: str
) -> None:
    """Decodes the trailer by hand, as a client in any language would."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await tracking.BatchTrack(batch([event(), event(user="")]), metadata=auth(api_key))

    error = info.value
    trailers = [value for key, value in error.trailing_metadata()
                if key == "grpc-status-details-bin"]
    assert len(trailers) == 1
    assert isinstance(trailers[0], bytes)
    status = status_pb2.Status.FromString(trailers[0])
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] == error.code().value[0]
    assert status.message == error.details() == (
        "events[1].external_user_id: is required when anonymous_id is empty")
    assert [d.type_url for d in status.details] == [
        "type.googleapis.com/google.rpc.BadRequest", "type.googleapis.com/google.rpc.ErrorInfo"]
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request == error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(
            field="events[1].external_user_id",
            description="is required when anonymous_id is empty")])
    error_info = error_details_pb2.ErrorInfo()
    assert status.details[1].Unpack(error_info)
    assert error_info == error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain="trackd")


# --- Health checking and reflection -------------------------------------------------------


@pytest.mark.parametrize("service", [SERVICE, ""])
async def test_health_check_reports_serving(channel: grpc.aio.Channel, service: str) -> None:
    response = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service))

    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_check_of_an_unknown_service_is_not_found(
    channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="trackd.v1.Nope"))

    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_and_describes_the_tracking_service(
    channel: grpc.aio.Channel,
) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)]

    responses = [response async for response in stub.ServerReflectionInfo(iter(requests))]

    assert len(responses) == 2
    listed = {s.name for s in responses[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= listed
    files = responses[1].file_descriptor_response.file_descriptor_proto
    assert files, responses[1]
    described = descriptor_pb2.FileDescriptorProto.FromString(files[0])
    assert described.package == "trackd.v1"
    assert [m.name for m in described.service[0].method] == ["TrackEvent", "BatchTrack",
                                                              "Identify", "TrackEvents",
                                                              "Subscribe"]
