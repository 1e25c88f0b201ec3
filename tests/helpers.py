"""Helpers the in-process tests share (plain functions, no fixtures: those are in
tests/fixtures.py): a gateway with rate limits of its own, and what the test's database
holds."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from trackd.gateway.app import create_app
from trackd.gateway.settings import GatewaySettings
from trackd.server.app import ServerConfig, create_server
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store

# Where the controlling pytest process hands the test database's URI to xdist workers.
URI_ENV = "TRACKD_TEST_MONGODB_URI"

# The ``make_key`` fixture: ``await make_key(project="acme", scopes=("track:events",))``.
KeyFactory = Callable[..., Awaitable[str]]


@asynccontextmanager
async def limited_gateway(store: Store, config: ServerConfig,
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


async def stored_events(store: Store, project: str = "acme") -> list[dict[str, Any]]:
    """What the database holds for ``project``, oldest first, without Mongo's _id."""
    cursor = store.db["events"].find({"project_id": project}, {"_id": 0}).sort("received_at", 1)
    return [doc async for doc in cursor]


async def stored_users(store: Store, project: str = "acme") -> list[dict[str, Any]]:
    """The user profiles the database holds for ``project``, by external id, without _id."""
    cursor = store.db["users"].find({"project_id": project}, {"_id": 0}).sort("external_id", 1)
    return [doc async for doc in cursor]
