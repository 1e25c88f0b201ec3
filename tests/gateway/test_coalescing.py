"""Concurrent single-event REST requests, which the gateway carries to the server in
shared TrackEvents calls (gateway/hop.py): each still gets exactly its own answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.settings import GatewaySettings
from server.app import TrackdServer
from storage import Store
from tests.conftest import KeyFactory, stored_events
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

Client = TestClient[Any, Any]
ACCEPTED = {"data": {"accepted": True}}
INVALID_KEY = {"errors": [{"code": "unauthorized", "message": "invalid or revoked API key"}]}


def body(event_id: str) -> dict[str, Any]:
    return {"external_user_id": "usr_1", "name": "feature_used", "event_id": event_id,
            "properties": {"feature": "export"}}


async def test_concurrent_requests_of_many_callers_each_get_their_own_answer(
    http: Client, store: Store, api_key: str, make_key: KeyFactory
) -> None:
    other = await make_key("globex")
    callers = [("acme", api_key), ("unknown", "trk_unknown"), ("globex", other)]

    async def post(i: int) -> tuple[str, int, Any]:
        project, key = callers[i % 3]
        resp = await http.post("/api/v1/events", json=body(f"{project}-{i}"),
                               headers={"Authorization": f"Bearer {key}"})
        return project, resp.status, await resp.json()

    answers = await asyncio.gather(*(post(i) for i in range(30)))

    for project, status, answer in answers:
        if project == "unknown":
            assert (status, answer) == (401, INVALID_KEY)
        else:
            assert (status, answer) == (202, ACCEPTED)
    assert sorted(d["event_id"] for d in await stored_events(store)) == sorted(
        f"acme-{i}" for i in range(0, 30, 3))
    assert sorted(d["event_id"] for d in await stored_events(store, "globex")) == sorted(
        f"globex-{i}" for i in range(2, 30, 3))


async def test_concurrent_retries_of_a_stored_request_replay_and_store_nothing_more(
    http: Client, store: Store, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}",
               "Idempotency-Key": "c0a1e5ce-0000-4000-8000-000000000001"}
    event = {"external_user_id": "usr_1", "name": "user_signed_up"}

    async def post() -> tuple[int, Any]:
        resp = await http.post("/api/v1/events", json=event, headers=headers)
        return resp.status, await resp.json()

    first = await post()
    retries = await asyncio.gather(*(post() for _ in range(5)))

    assert [first, *retries] == [(202, ACCEPTED)] * 6
    (stored,) = await stored_events(store)
    assert stored["name"] == "user_signed_up"


@pytest.fixture
async def old_server(server: TrackdServer) -> AsyncIterator[int]:
    """A gRPC server that predates TrackEvents: TrackEvent only, passed on to ``server``."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = tracking_pb2_grpc.TrackingServiceStub(channel)

    async def track_event(request: tracking_pb2.TrackEventRequest,
                          context: grpc.aio.ServicerContext[Any, Any]
                          ) -> tracking_pb2.TrackEventResponse:
        try:
            response: tracking_pb2.TrackEventResponse = await stub.TrackEvent(
                request, metadata=context.invocation_metadata())
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "",
                                tuple(exc.trailing_metadata() or ()))
        return response

    old = grpc.aio.server()
    old.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "trackd.v1.TrackingService", {"TrackEvent": grpc.unary_unary_rpc_method_handler(
            track_event,
            request_deserializer=tracking_pb2.TrackEventRequest.FromString,
            response_serializer=tracking_pb2.TrackEventResponse.SerializeToString)})])
    port = old.add_insecure_port("127.0.0.1:0")
    await old.start()
    yield port
    await old.stop(None)
    await channel.close()


async def test_a_server_without_trackevents_gets_trackevent_calls_instead(
    old_server: int, store: Store, api_key: str
) -> None:
    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{old_server}"))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as http:

        async def post(i: int, key: str) -> tuple[int, Any]:
            resp = await http.post("/api/v1/events", json=body(f"e-{i}"),
                                   headers={"Authorization": f"Bearer {key}"})
            return resp.status, await resp.json()

        first = await asyncio.gather(*(post(i, api_key) for i in range(3)))
        later = [await post(3, api_key), await post(4, "trk_unknown")]

    assert [*first, *later] == [(202, ACCEPTED)] * 4 + [(401, INVALID_KEY)]
    assert sorted(d["event_id"] for d in await stored_events(store)) == [
        f"e-{i}" for i in range(4)]
