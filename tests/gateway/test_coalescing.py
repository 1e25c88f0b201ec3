"""Concurrent single-event REST requests, which the gateway carries to the server in
shared TrackEvents calls (trackd/gateway/hop.py): each still gets exactly its own answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.helpers import KeyFactory, limited_gateway, stored_events
from tests.scrape import delta, parse
from trackd.gateway.app import create_app
from trackd.gateway.settings import GatewaySettings
from trackd.server.app import ServerConfig, TrackdServer
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store
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


async def test_coalesced_requests_each_get_their_own_rate_limit_headers(
    store: Store, server_config: ServerConfig, api_key: str
) -> None:
    """The limiter counts each carried call by its own key and dialect; each answer has
    the RateLimit headers its own TrackEvent call would have given, a 429's too."""
    async with limited_gateway(store, server_config, {"vibefollow": RateLimit(3, 60)}) as http:
        before = parse(await (await http.get("/metrics")).text())

        async def post(i: int) -> tuple[int, Any, str, str, str | None]:
            resp = await http.post("/api/v1/events", json=body(f"limited-{i}"),
                                   headers={"Authorization": f"Bearer {api_key}"})
            return (resp.status, await resp.json(), resp.headers["RateLimit-Policy"],
                    resp.headers["RateLimit"], resp.headers.get("Retry-After"))

        answers = await asyncio.gather(*(post(i) for i in range(5)))
        after = parse(await (await http.get("/metrics")).text())

    accepted = [a for a in answers if a[0] == 202]
    limited = [a for a in answers if a[0] == 429]
    assert len(accepted) == 3
    assert len(limited) == 2
    assert {a[2] for a in answers} == {'"vibefollow";q=3;w=60'}
    assert sorted(a[3].split(";")[1] for a in accepted) == ["r=0", "r=1", "r=2"]
    assert all(a[1] == ACCEPTED and a[4] is None for a in accepted)
    for _, _, _, state, retry_after in limited:
        assert state.startswith('"vibefollow";r=0;t=')
        assert retry_after is not None
        assert 1 <= int(retry_after) <= 20
    assert len(await stored_events(store)) == 3
    tracking = {"service": "trackd.v1.TrackingService", "method": "TrackEvent"}
    assert delta(before, after, "trackd_grpc_requests_total", **tracking, code="OK") == 3
    assert delta(before, after, "trackd_grpc_requests_total", **tracking,
                 code="RESOURCE_EXHAUSTED") == 2
    carriers = delta(before, after, "trackd_grpc_requests_total",
                     service="trackd.v1.TrackingService", method="TrackEvents", code="OK")
    assert 1 <= carriers <= 5


async def test_coalesced_requests_are_counted_each_and_listed_in_their_carriers_line(
    http: Client, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """events_total by each request's own dialect, TrackEvent counted per request
    (TrackEvents on its own), one HTTP access line per request and one gRPC line per
    TrackEvents call listing each carried call with its request id, code and project."""
    caplog.set_level(logging.INFO, logger="trackd.access")
    flywheel_event = {"event": {"event": "user_signup", "user_id": "user123"}}
    before = parse(await (await http.get("/metrics")).text())

    async def post(i: int) -> int:
        rid = {"X-Request-Id": f"rid-coalesced-{i}"}
        if i % 2:  # Flywheel: the key itself, with Auth-Type
            resp = await http.post("/v1/events", json=flywheel_event, headers={
                **rid, "Authorization": api_key, "Auth-Type": "api"})
        else:
            resp = await http.post("/api/v1/events", json=body(f"obs-{i}"), headers={
                **rid, "Authorization": f"Bearer {api_key}"})
        return resp.status

    statuses = await asyncio.gather(*(post(i) for i in range(8)))
    after = parse(await (await http.get("/metrics")).text())

    assert statuses == [202, 200] * 4
    for source in ("vibefollow", "flywheel"):
        assert delta(before, after, "trackd_events_total", outcome="stored",
                     source=source) == 4, source
    assert delta(before, after, "trackd_events_total", outcome="stored", source="grpc") == 0
    tracking = {"service": "trackd.v1.TrackingService", "method": "TrackEvent"}
    assert delta(before, after, "trackd_grpc_requests_total", **tracking, code="OK") == 8
    assert delta(before, after, "trackd_grpc_request_duration_seconds_count", **tracking) == 8
    lines = [fields for record in caplog.records if record.name == "trackd.access"
             and (fields := getattr(record, "fields", {})).get("kind") == "grpc"]
    http_lines = [fields for record in caplog.records if record.name == "trackd.access"
                  and (fields := getattr(record, "fields", {})).get("kind") == "http"
                  and fields.get("route") in {"/api/v1/events", "/v1/events"}]
    assert sorted(str(line["request_id"]) for line in http_lines) == sorted(
        f"rid-coalesced-{i}" for i in range(8))
    # One line per RPC: the carried calls are listed in their TrackEvents call's line.
    assert {line["method"] for line in lines} == {"TrackEvents"}
    assert 1 <= len(lines) <= 8
    assert all(line["source"] == "grpc" and line["code"] == "OK" for line in lines)
    carried = [call for line in lines for call in line["calls"]]
    assert sum(line["events"] for line in lines) == 8
    assert sorted(str(call["request_id"]) for call in carried) == sorted(
        f"rid-coalesced-{i}" for i in range(8))
    assert all(call["code"] == "OK" and call["events"] == 1 and call["project"] == "acme"
               and call["latency_ms"] >= 0 for call in carried)
    assert {call["source"] for call in carried if call["request_id"] in {
        f"rid-coalesced-{i}" for i in range(1, 8, 2)}} == {"flywheel"}
    assert {call["source"] for call in carried if call["request_id"] in {
        f"rid-coalesced-{i}" for i in range(0, 8, 2)}} == {"vibefollow"}
