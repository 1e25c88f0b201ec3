"""Helpers for the SDK's tests: an ``on_error`` callback that keeps what it is given, and
what the database holds for them."""

from __future__ import annotations

from typing import Any

from trackd.storage import Store
from trackd_client import DeliveryError


class Errors(list[DeliveryError]):
    """An ``on_error`` callback that keeps what it is given."""

    def __call__(self, error: DeliveryError) -> None:
        self.append(error)


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
