"""Event.client_context_json and IdentifyRequest.validate_only over real gRPC."""

from __future__ import annotations

import grpc
import pytest

from storage import Store
from tests.helpers import stored_events, stored_users
from tests.server.helpers import auth, event
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub


async def test_client_context_is_stored_apart_as_compact_json(
    tracking: Stub, api_key: str, store: Store
) -> None:
    ev = event(event_id="e-1")
    ev.client_context_json = b'{"$lib": "posthog-python", "context": {"ip": "10.0.0.1"}}'
    await tracking.TrackEvent(tracking_pb2.TrackEventRequest(event=ev), metadata=auth(api_key))
    (doc,) = await stored_events(store)
    assert doc["client_context"] == '{"$lib":"posthog-python","context":{"ip":"10.0.0.1"}}'
    assert "$lib" not in doc["properties"]


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
