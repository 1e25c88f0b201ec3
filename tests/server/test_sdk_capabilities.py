"""What the vendor SDK dialects need of the server, over real gRPC: Event.client_context_json
and IdentifyRequest's validate_only, previous_user_id and traits_once."""

from __future__ import annotations

import grpc
import pytest

from tests.helpers import stored_events, stored_users
from tests.server.helpers import auth, event
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc, users_pb2, users_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub


async def test_client_context_is_stored_apart_as_compact_json(
    tracking: Stub, channel: grpc.aio.Channel, key: str, store: Store
) -> None:
    ev = event(event_id="e-1")
    ev.client_context_json = b'{"$lib": "posthog-python", "context": {"ip": "10.0.0.1"}}'
    await tracking.TrackEvent(tracking_pb2.TrackEventRequest(event=ev), metadata=auth(key))
    (doc,) = await stored_events(store)
    assert doc["client_context"] == '{"$lib":"posthog-python","context":{"ip":"10.0.0.1"}}'
    assert "$lib" not in doc["properties"]
    # Read back as it is stored.
    await tracking.Identify(tracking_pb2.IdentifyRequest(external_id="u-1"),
                            metadata=auth(key))
    listed = await users_pb2_grpc.UserServiceStub(channel).ListUserEvents(
        users_pb2.ListUserEventsRequest(external_id="u-1"), metadata=auth(key))
    assert [e.client_context_json for e in listed.events] == [
        b'{"$lib":"posthog-python","context":{"ip":"10.0.0.1"}}']


@pytest.mark.parametrize(("raw", "message"), [
    (b"[1]", "event.client_context_json: must be a JSON object, not an array"),
    (b'"x"', "event.client_context_json: must be a JSON object, not a string"),
    (b'{"a": "' + b"x" * (1024 * 1024) + b'"}',
     "event.client_context_json: must be at most 1048576 bytes as JSON"),
])
async def test_bad_client_context_is_refused(
    tracking: Stub, api_key: str, store: Store, raw: bytes, message: str
) -> None:
    ev = event()
    ev.client_context_json = raw
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tracking.TrackEvent(tracking_pb2.TrackEventRequest(event=ev),
                                  metadata=auth(api_key))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == message
    assert await stored_events(store) == []


async def test_identify_validate_only_changes_nothing(
    tracking: Stub, api_key: str, store: Store
) -> None:
    request = tracking_pb2.IdentifyRequest(external_id="u1", anonymous_id="a1",
                                           validate_only=True)
    request.traits.update({"plan": "pro"})
    assert await tracking.Identify(request, metadata=auth(api_key)) == \
        tracking_pb2.IdentifyResponse()
    assert await stored_users(store) == []
    request.traits.update({"a.b": 1})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tracking.Identify(request, metadata=auth(api_key))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tracking.Identify(request, metadata=auth("trk_unknown"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await stored_users(store) == []


async def test_previous_user_id_joins_its_events_unless_it_is_a_user(
    tracking: Stub, api_key: str, store: Store
) -> None:
    for user, event_id in (("anon-1", "e-1"), ("anon-1", "e-2"), ("known", "e-3")):
        await tracking.TrackEvent(tracking_pb2.TrackEventRequest(
            event=event(user=user, event_id=event_id)), metadata=auth(api_key))
    await tracking.Identify(tracking_pb2.IdentifyRequest(external_id="known"),
                            metadata=auth(api_key))
    await tracking.Identify(tracking_pb2.IdentifyRequest(
        external_id="u1", previous_user_id="anon-1"), metadata=auth(api_key))
    await tracking.Identify(tracking_pb2.IdentifyRequest(
        external_id="u1", previous_user_id="known"), metadata=auth(api_key))
    owners = {doc["event_id"]: doc["user_id"] for doc in await stored_events(store)}
    assert owners == {"e-1": "u1", "e-2": "u1", "e-3": "known"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tracking.Identify(tracking_pb2.IdentifyRequest(
            external_id="u1", previous_user_id="x" * 257), metadata=auth(api_key))
    assert caught.value.details() == "previous_user_id: must be at most 256 characters"


async def test_traits_once_set_only_what_is_absent(
    tracking: Stub, api_key: str, store: Store
) -> None:
    first = tracking_pb2.IdentifyRequest(external_id="u1")
    first.traits.update({"plan": "pro"})
    first.traits_once.update({"plan": "free", "source": "ads"})
    await tracking.Identify(first, metadata=auth(api_key))
    again = tracking_pb2.IdentifyRequest(external_id="u1")
    again.traits_once.update({"source": "seo", "seats": 3})
    await tracking.Identify(again, metadata=auth(api_key))
    (user,) = await stored_users(store)
    assert user["traits"] == {"plan": "pro", "source": "ads", "seats": 3}
    bad = tracking_pb2.IdentifyRequest(external_id="u1")
    bad.traits_once.update({"a.b": 1})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tracking.Identify(bad, metadata=auth(api_key))
    assert caught.value.details() == \
        "traits_once.a.b: trait keys must be non-empty and contain no '.', '$' or NUL"
