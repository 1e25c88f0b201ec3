"""The quarantined_events collection: events a blocking tracking plan refused, kept
:data:`trackd.storage.indexes.QUARANTINE_TTL_SECONDS` (30 days) for release.

One document per (project, event id): the event exactly as it would have been stored,
the violations that refused it, the plan version that judged it and the request id of
the call that sent it. A refused event sent again with the same event id (or idempotency
key) refreshes its document instead of adding one. Released events are removed once
stored (their event ids make a second release store nothing twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from trackd.storage.errors import translated
from trackd.storage.indexes import QUARANTINE


@dataclass(frozen=True)
class QuarantinedEvent:
    """A refused event: ``event`` is the document the events collection would hold."""

    event: dict[str, Any]
    violations: list[dict[str, str]]
    plan_version: int
    request_id: str
    quarantined_at: datetime


def _record(doc: dict[str, Any]) -> QuarantinedEvent:
    return QuarantinedEvent(doc["event"], list(doc.get("violations", [])),
                            int(doc.get("plan_version", 0)), doc.get("request_id", ""),
                            doc["quarantined_at"])


def _filter(project_id: str, name: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"project_id": project_id}
    if name:
        query["name"] = name
    return query


class QuarantineRepository:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._quarantine = db[QUARANTINE]

    async def put(self, items: Sequence[QuarantinedEvent]) -> None:
        """Keep ``items`` (durably: the caller answers only after this returns)."""
        if not items:
            return
        requests = []
        for item in items:
            event = item.event
            key = {"project_id": event["project_id"], "event_id": event["event_id"]}
            requests.append(ReplaceOne(key, {
                **key, "name": event["name"], "event": event, "violations": item.violations,
                "plan_version": item.plan_version, "request_id": item.request_id,
                "quarantined_at": item.quarantined_at}, upsert=True))
        with translated():
            await self._quarantine.bulk_write(requests, ordered=False)

    async def list(self, project_id: str, name: str | None = None,
                   limit: int = 1000) -> list[QuarantinedEvent]:
        """The project's quarantined events (of one event name), oldest first."""
        with translated():
            cursor = self._quarantine.find(_filter(project_id, name)).sort(
                [("quarantined_at", ASCENDING), ("event_id", ASCENDING)]).limit(limit)
            return [_record(doc) async for doc in cursor]

    async def count(self, project_id: str, name: str | None = None) -> int:
        with translated():
            return await self._quarantine.count_documents(_filter(project_id, name))

    async def remove(self, project_id: str, event_ids: Sequence[str]) -> int:
        """Remove these events (released); how many were there."""
        if not event_ids:
            return 0
        with translated():
            result = await self._quarantine.delete_many(
                {"project_id": project_id, "event_id": {"$in": list(event_ids)}})
        return result.deleted_count

    async def drop(self, project_id: str, name: str | None = None) -> int:
        """Discard the project's quarantined events (of one event name); how many."""
        with translated():
            result = await self._quarantine.delete_many(_filter(project_id, name))
        return result.deleted_count

