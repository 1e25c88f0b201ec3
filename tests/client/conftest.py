"""Fixtures for the SDK's tests: the real server in this process (tests/conftest.py), a
server whose events collection is unreachable (tests/server/conftest.py), and real
processes for database faults (tests/durability/conftest.py).

The sync ``Client`` blocks its caller in ``flush()`` and ``close()``; against a server
running in the test's own event loop those calls go through ``asyncio.to_thread``.
"""

from __future__ import annotations

from typing import Any

import pytest

from server.app import TrackdServer
from server.auth import ALL_SCOPES
from storage import Store
from tests.conftest import KeyFactory
from tests.durability.conftest import database, key, start_trackd
from tests.server.conftest import dead_store, events_down
from trackd_client import DeliveryError

__all__ = ["database", "dead_store", "events_down", "key", "start_trackd"]


@pytest.fixture
async def full_key(make_key: KeyFactory) -> str:
    """A key of project ``acme`` with every scope (identify needs ``users:write``)."""
    return await make_key("acme", ALL_SCOPES)


class Errors(list[DeliveryError]):
    """An ``on_error`` callback that keeps what it is given."""

    def __call__(self, error: DeliveryError) -> None:
        self.append(error)


@pytest.fixture
def errors() -> Errors:
    return Errors()


async def count_by_event_id(store: Store, project: str = "acme") -> dict[str, int]:
    """How many times each event id of ``project`` is stored."""
    cursor = await store.db["events"].aggregate([
        {"$match": {"project_id": project}},
        {"$group": {"_id": "$event_id", "n": {"$sum": 1}}},
    ])
    return {str(doc["_id"]): int(doc["n"]) async for doc in cursor}  # type: ignore[call-overload]


async def stored_user(store: Store, external_id: str,
                      project: str = "acme") -> dict[str, Any] | None:
    found: dict[str, Any] | None = await store.db["users"].find_one(
        {"project_id": project, "external_id": external_id}, {"_id": 0})
    return found


@pytest.fixture
def target(server: TrackdServer) -> str:
    """The in-process server's gRPC address."""
    return f"127.0.0.1:{server.port}"
