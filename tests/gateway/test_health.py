"""``/healthz``, ``/readyz`` and gRPC health on real servers; and what a REST client gets
when the gateway cannot reach the gRPC server: 503 + Retry-After with a generic message
in its dialect's envelope, never grpc's own text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.processes import free_ports
from trackd.gateway.app import create_app
from trackd.gateway.settings import GatewaySettings
from trackd.server.app import SERVICE_NAMES
from trackd.server.health import DATABASE_CHECK, WRITE_QUEUE_CHECK, HealthMonitor
from trackd.server.pipeline import PipelineConfig, WritePipeline
from trackd.storage import Store, connect

READY = {"status": "ok", "checks": {"grpc_server": "ok", "database": "ok",
                                    "write_queue": "ok"}}
UNREACHABLE = {"status": "unavailable", "checks": {
    "grpc_server": "unreachable", "database": "unknown", "write_queue": "unknown"}}
GENERIC = "the service is temporarily unavailable; retry later"


@pytest.fixture
async def orphan_http() -> AsyncIterator[TestClient[Any, Any]]:
    """A real gateway whose gRPC server is not there (nothing listens on its port)."""
    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{free_ports(1)[0]}"))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


async def test_healthz_and_readyz_need_no_key(http: TestClient[Any, Any]) -> None:
    response = await http.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    response = await http.get("/readyz")
    assert response.status == 200
    assert await response.json() == READY


async def test_grpc_health_serving_overall_and_per_service(
        channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", *SERVICE_NAMES, DATABASE_CHECK, WRITE_QUEUE_CHECK):
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, name


async def test_gateway_without_grpc_server(orphan_http: TestClient[Any, Any]) -> None:
    response = await orphan_http.get("/healthz")
    assert response.status == 200  # alive, though not ready
    response = await orphan_http.get("/readyz")
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert await response.json() == UNREACHABLE


async def test_vibefollow_client_gets_a_generic_503(orphan_http: TestClient[Any, Any]) -> None:
    response = await orphan_http.post(
        "/api/v1/events", json={"external_user_id": "u1", "name": "signed_up"},
        headers={"Authorization": "Bearer trk_whatever"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert await response.json() == {
        "errors": [{"code": "service_unavailable", "message": GENERIC}]}


async def test_cueflow_client_gets_a_generic_503(orphan_http: TestClient[Any, Any]) -> None:
    response = await orphan_http.post(
        "/api/v1/contacts", json={"email": "ada@example.com"},
        headers={"Authorization": "Bearer trk_whatever"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert await response.json() == {"error": f"Service unavailable: {GENERIC}"}


async def test_flywheel_and_databuddy_clients_get_a_generic_503(
        orphan_http: TestClient[Any, Any]) -> None:
    response = await orphan_http.post(
        "/v1/events", json={"event": {"event": "signed_up", "user_id": "u1"}},
        headers={"Authorization": "trk_whatever", "Auth-Type": "api"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    text = await response.text()
    response = await orphan_http.post("/track", json={"name": "signed_up"},
                                      headers={"Authorization": "Bearer trk_whatever"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    text += await response.text()
    for transport_word in ("127.0.0.1", "ipv4", "connect", "addresses", "refused"):
        assert transport_word not in text.lower()


async def test_full_write_queue_is_not_ready(store: Store) -> None:
    """A pipeline whose database does not answer keeps its write queued: with a bound of
    one event, the queue is full, and the write-queue check and TrackingService say so
    while the database (which does answer the monitor's ping) is fine; so does /readyz."""
    dead = await connect(f"mongodb://127.0.0.1:{free_ports(1)[0]}/?directConnection=true",
                         "trackd", create_indexes=False)
    pipeline = WritePipeline(dead.events, PipelineConfig(max_queued_events=1))
    servicer = health.aio.HealthServicer()
    monitor = HealthMonitor(servicer, store.ping, pipeline, SERVICE_NAMES,
                            tracking_service=SERVICE_NAMES[0])
    grpc_server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    await grpc_server.start()
    write = None
    try:
        await monitor.start()
        write = asyncio.ensure_future(pipeline.write([{"event_id": "e1"}]))
        await asyncio.sleep(0)
        assert pipeline.queued_events == 1
        await monitor.check()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            async def status(name: str) -> str:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=name))
                name_of: str = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
                return name_of

            assert await status(WRITE_QUEUE_CHECK) == "NOT_SERVING"
            assert await status(DATABASE_CHECK) == "SERVING"
            assert await status("") == "NOT_SERVING"
            assert await status(SERVICE_NAMES[0]) == "NOT_SERVING"
            for name in SERVICE_NAMES[1:]:
                assert await status(name) == "SERVING"
        app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{port}"))
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as http:
            response = await http.get("/readyz")
            assert response.status == 503
            assert await response.json() == {"status": "unavailable", "checks": {
                "grpc_server": "ok", "database": "ok", "write_queue": "full"}}
    finally:
        await monitor.close()
        if write is not None:
            write.cancel()
        await pipeline.close()
        await grpc_server.stop(0)
        await dead.close()
