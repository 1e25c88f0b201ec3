"""The shared fixtures, registered once for the whole suite by tests/conftest.py.

In-process: one embedded database per test run (the controlling pytest process starts it
and hands its URI to xdist workers through the environment; set MONGODB_URI to test
against another server), a database name of each test's own (so tests run in parallel
without seeing each other), and real servers on port 0 per test: the gRPC server, the
gateway in front of it, servers in unusual situations (no database, a tiny write queue,
rate limits of the test's own), and API keys.

Real processes (tests/durability/harness.py): a database process of the test's own, a key
made in it by ``trackd keys create``, and ``trackd serve`` on it; all killed afterwards.

Helpers that are not fixtures are plain modules: tests/helpers.py, tests/processes.py.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.durability.harness import Database, StartTrackd, Trackd, create_key
from tests.helpers import URI_ENV, KeyFactory, limited_gateway
from trackd.gateway.app import create_app
from trackd.gateway.settings import GatewaySettings
from trackd.server.app import ServerConfig, TrackdServer, create_server
from trackd.server.auth import ALL_SCOPES, issue_key
from trackd.server.pipeline import PipelineConfig
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store, connect
from trackd.storage.embedded import EmbeddedDatabase
from trackd.v1 import tracking_pb2_grpc

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


# --- the database ----------------------------------------------------------------------------


@pytest.fixture
def mongodb_uri() -> str:
    return os.environ[URI_ENV]


@pytest.fixture
async def store(mongodb_uri: str) -> AsyncIterator[Store]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    # reachable_within: on a loaded machine the first connection can take longer than
    # the 1 s server selection trackd serves with; setting up is not what is tested.
    store = await connect(mongodb_uri, name, reachable_within=30)
    yield store
    await store.client.drop_database(name)
    await store.close()


DEAD_URI = "mongodb://127.0.0.1:1/?directConnection=true"


@pytest.fixture
async def dead_store() -> AsyncIterator[Store]:
    """A store whose database does not exist: every operation times out (300 ms).

    A real client pointed at a loopback port where nothing listens."""
    store = await connect(DEAD_URI, "x", server_selection_timeout_ms=300, create_indexes=False)
    yield store
    await store.close()


# --- the gRPC server -------------------------------------------------------------------------

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


ServerAndStub = tuple[TrackdServer, tracking_pb2_grpc.TrackingServiceStub]


@asynccontextmanager
async def _serve(store: Store, config: ServerConfig) -> AsyncIterator[ServerAndStub]:
    srv = await create_server(store, config)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            yield srv, tracking_pb2_grpc.TrackingServiceStub(channel)
    finally:
        await srv.stop(grace=5)


@pytest.fixture
async def dead_db_tracking(
    dead_store: Store, server_config: ServerConfig
) -> AsyncIterator[tracking_pb2_grpc.TrackingServiceStub]:
    """A server whose whole database is unreachable (keys included)."""
    async with _serve(dead_store, server_config) as (_, stub):
        yield stub


@pytest.fixture
async def events_down(
    store: Store, dead_store: Store, server_config: ServerConfig
) -> AsyncIterator[ServerAndStub]:
    """A server whose keys and idempotency records live in the test database but whose
    events collection is unreachable: authentication passes, the durable write fails."""
    split = dataclasses.replace(store, events=dead_store.events)
    async with _serve(split, server_config) as pair:
        yield pair


@pytest.fixture
async def tiny_queue(store: Store) -> AsyncIterator[ServerAndStub]:
    """A server on the test database whose write queue holds at most 10 events."""
    config = ServerConfig(port=0, auth_cache_seconds=0,
                          pipeline=PipelineConfig(max_queued_events=10))
    async with _serve(store, config) as pair:
        yield pair


# --- the gateway -----------------------------------------------------------------------------


@pytest.fixture
async def http(server: TrackdServer) -> AsyncIterator[TestClient[Any, Any]]:
    """A real HTTP client on a real gateway (port 0) calling the real gRPC server."""
    app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{server.port}"))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


@pytest.fixture
def rate_limits() -> Mapping[str, RateLimit | None]:
    """The rate limits of ``limited_http``'s server: a test module overrides this."""
    return {}


@pytest.fixture
async def limited_http(store: Store, server_config: ServerConfig,
                       rate_limits: Mapping[str, RateLimit | None],
                       ) -> AsyncIterator[TestClient[Any, Any]]:
    """A gateway in front of a server of its own whose rate limits are ``rate_limits``."""
    async with limited_gateway(store, server_config, rate_limits) as client:
        yield client


# --- API keys --------------------------------------------------------------------------------


@pytest.fixture
def make_key(store: Store) -> KeyFactory:
    async def make(project: str = "acme", scopes: tuple[str, ...] = ("track:events",)) -> str:
        return (await issue_key(store.keys, project, scopes)).secret

    return make


@pytest.fixture
async def api_key(make_key: KeyFactory) -> str:
    """A key of project ``acme`` with the ``track:events`` scope."""
    return await make_key()


@pytest.fixture
async def key(make_key: KeyFactory) -> str:
    """A key of project ``acme`` holding every scope (tests/durability overrides it with
    ``database_key``)."""
    return await make_key("acme", ALL_SCOPES)


# --- real processes --------------------------------------------------------------------------

@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """SecantusDB on a fixed port and data directory of this test (restartable)."""
    db = Database(tmp_path)
    try:
        await db.start()
        yield db
    finally:
        db.close()


@pytest.fixture
async def database_key(database: Database) -> str:
    """An API key of the harness's project in ``database``, made by ``trackd keys create``."""
    return await create_key(database)


@pytest.fixture
async def start_trackd(tmp_path: Path, database: Database) -> AsyncIterator[StartTrackd]:
    """Start ``trackd serve`` on ``database`` with TRACKD_* settings; killed afterwards."""
    started: list[Trackd] = []

    async def start(**settings: str) -> Trackd:
        trackd = Trackd(tmp_path, database.uri, **settings)
        started.append(trackd)
        await trackd.start()
        return trackd

    try:
        yield start
    finally:
        for trackd in started:
            trackd.close()
