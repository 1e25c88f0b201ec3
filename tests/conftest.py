"""Shared fixtures: one embedded database per test run, real servers on port 0 per test.

The controlling pytest process starts the embedded database once and hands its URI to
xdist workers through the environment; set MONGODB_URI to test against another server.
Every test gets its own database name, so tests run in parallel without seeing each other.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.settings import GatewaySettings
from server.app import ServerConfig, TrackdServer, create_server
from server.auth import issue_key
from server.pipeline import PipelineConfig
from server.ratelimit import RateLimit
from storage import Store, connect
from storage.embedded import EmbeddedDatabase
from trackd.v1 import tracking_pb2_grpc

URI_ENV = "TRACKD_TEST_MONGODB_URI"
_embedded: EmbeddedDatabase | None = None
_tmp: tempfile.TemporaryDirectory[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _embedded, _tmp
    if hasattr(config, "workerinput") or os.environ.get(URI_ENV):
        return  # an xdist worker: the controller's database is in the environment
    if os.environ.get("MONGODB_URI"):
        os.environ[URI_ENV] = os.environ["MONGODB_URI"]
        return
    _tmp = tempfile.TemporaryDirectory(prefix="trackd-tests-")
    _embedded = EmbeddedDatabase(Path(_tmp.name))
    os.environ[URI_ENV] = _embedded.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _embedded is not None:
        _embedded.stop()
    if _tmp is not None:
        _tmp.cleanup()


@pytest.fixture
def mongodb_uri() -> str:
    return os.environ[URI_ENV]


@pytest.fixture
async def store(mongodb_uri: str) -> AsyncIterator[Store]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    store = await connect(mongodb_uri, name)
    yield store
    await store.client.drop_database(name)
    await store.close()


BOTH_AUDIENCE_PATHS = "both_audience_paths"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    chosen = any("audience_path" in marker.args[0]
                 for marker in metafunc.definition.iter_markers("parametrize"))
    if metafunc.definition.get_closest_marker(BOTH_AUDIENCE_PATHS) and not chosen:
        metafunc.parametrize("audience_path", ["index", "events"])


@pytest.fixture
def audience_path() -> str:
    """How the server evaluates audiences: "index" (the default) or "events"."""
    return "index"


@pytest.fixture
def server_config(audience_path: str) -> ServerConfig:
    """Tests see key revocation at once, hence no auth cache."""
    return ServerConfig(port=0, auth_cache_seconds=0, pipeline=PipelineConfig(),
                        audience_index=audience_path == "index")


@pytest.fixture
async def server(store: Store, server_config: ServerConfig,
                 request: pytest.FixtureRequest) -> AsyncIterator[TrackdServer]:
    srv = await create_server(store, server_config)
    if srv.audience_index is not None and request.node.get_closest_marker(BOTH_AUDIENCE_PATHS):
        assert await srv.audience_index.prepare("acme")
    yield srv
    await srv.stop(grace=5)


@pytest.fixture
async def channel(server: TrackdServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        yield ch


@pytest.fixture
def tracking(channel: grpc.aio.Channel) -> tracking_pb2_grpc.TrackingServiceStub:
    return tracking_pb2_grpc.TrackingServiceStub(channel)


@pytest.fixture
async def http(server: TrackdServer) -> AsyncIterator[TestClient[Any, Any]]:
    """A real HTTP client on a real gateway (port 0) calling the real gRPC server."""
    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{server.port}"))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


@asynccontextmanager
async def limited_http(store: Store, config: ServerConfig,
                       rate_limits: Mapping[str, RateLimit | None],
                       ) -> AsyncIterator[TestClient[Any, Any]]:
    """A gateway in front of a server of its own whose rate limits are ``rate_limits``."""
    srv = await create_server(store, dataclasses.replace(config, rate_limits=rate_limits))
    try:
        app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{srv.port}"))
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
            yield client
    finally:
        await srv.stop(grace=5)


KeyFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def make_key(store: Store) -> KeyFactory:
    async def make(project: str = "acme", scopes: tuple[str, ...] = ("track:events",)) -> str:
        return (await issue_key(store.keys, project, scopes)).secret

    return make


@pytest.fixture
async def api_key(make_key: KeyFactory) -> str:
    """A key of project ``acme`` with the ``track:events`` scope."""
    return await make_key()


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on right now (held open together, so they differ), for the
    tests that run `trackd serve` itself, whose ports are fixed by flags."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


async def stored_events(store: Store, project: str = "acme") -> list[dict[str, Any]]:
    """What the database holds for ``project``, oldest first, without Mongo's _id."""
    cursor = store.db["events"].find({"project_id": project}, {"_id": 0}).sort("received_at", 1)
    return [doc async for doc in cursor]
