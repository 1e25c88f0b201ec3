"""TrackEventRequest.validate_only over real gRPC: validated and authenticated, never stored."""

from __future__ import annotations

import grpc
import pytest

from tests.helpers import KeyFactory, stored_events
from tests.server.helpers import auth, event
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub


def validate(
    ev: tracking_pb2.Event, idempotency_key: str = "",
    unknown_user: tracking_pb2.UnknownUserPolicy =
    tracking_pb2.UNKNOWN_USER_POLICY_UNSPECIFIED,
) -> tracking_pb2.TrackEventRequest:
    request = tracking_pb2.TrackEventRequest(
        validate_only=True, idempotency_key=idempotency_key, unknown_user=unknown_user)
    request.event.CopyFrom(ev)
    return request


async def test_valid_event_is_accepted_and_not_stored(
    tracking: Stub, api_key: str, store: Store
) -> None:
    response = await tracking.TrackEvent(validate(event(event_id="e-1")), metadata=auth(api_key))
    assert response == tracking_pb2.TrackEventResponse(event_id="e-1")
    response = await tracking.TrackEvent(validate(event()), metadata=auth(api_key))
    assert response == tracking_pb2.TrackEventResponse()
    assert await stored_events(store) == []


async def test_invalid_event_is_rejected_as_when_storing(
    tracking: Stub, api_key: str, store: Store
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tracking.TrackEvent(validate(event(name="")), metadata=auth(api_key))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "event.name: is required"
    assert await stored_events(store) == []


async def test_authentication_and_scope_still_apply(
    tracking: Stub, make_key: KeyFactory, store: Store
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tracking.TrackEvent(validate(event()), metadata=auth("trk_unknown"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tracking.TrackEvent(validate(event()), metadata=auth(await make_key(scopes=())))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_unknown_user_policy_reject_is_checked(
    tracking: Stub, api_key: str, store: Store
) -> None:
    request = validate(event(user="nobody"),
                       unknown_user=tracking_pb2.UNKNOWN_USER_POLICY_REJECT)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tracking.TrackEvent(request, metadata=auth(api_key))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert await stored_events(store) == []


async def test_idempotency_key_is_not_recorded(
    tracking: Stub, api_key: str, store: Store
) -> None:
    await tracking.TrackEvent(validate(event(name="a"), idempotency_key="k-1"),
                              metadata=auth(api_key))
    # The same key with another event is not a reuse: validation recorded nothing.
    request = tracking_pb2.TrackEventRequest(idempotency_key="k-1")
    request.event.CopyFrom(event(name="b"))
    await tracking.TrackEvent(request, metadata=auth(api_key))
    assert [d["name"] for d in await stored_events(store)] == ["b"]
