"""The plan_violations collection: one entry per violation a tracking plan found, kept
:data:`trackd.storage.indexes.PLAN_VIOLATIONS_TTL_SECONDS` (30 days), and the report over them.

Each entry: project, event name, kind, field, message, the event id and the request id of
the call that sent it, and when. The report groups a project's entries since a time by
event name and kind: how many, when last, and the latest as the example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from trackd.storage.errors import translated
from trackd.storage.indexes import PLAN_VIOLATIONS


@dataclass(frozen=True)
class ViolationEntry:
    """One violation of one event."""

    project_id: str
    name: str
    kind: str
    field: str
    message: str
    event_id: str
    request_id: str
    at: datetime
    plan_version: int
    blocked: bool


@dataclass(frozen=True)
class ViolationSummary:
    """A report row: the violations of one kind on one event name."""

    name: str
    kind: str
    count: int
    last_seen: datetime
    example: ViolationEntry


def _entry(doc: dict[str, Any]) -> ViolationEntry:
    return ViolationEntry(doc["project_id"], doc["name"], doc["kind"], doc["field"],
                          doc["message"], doc["event_id"], doc["request_id"], doc["at"],
                          int(doc.get("plan_version", 0)), bool(doc.get("blocked", False)))


class ViolationLog:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._log = db[PLAN_VIOLATIONS]

    async def record(self, entries: Sequence[ViolationEntry]) -> None:
        """Store ``entries``, each as a document of its fields (nothing for none)."""
        if entries:
            with translated():
                await self._log.insert_many([asdict(e) for e in entries], ordered=False)

    async def report(self, project_id: str, since: datetime) -> list[ViolationSummary]:
        """Per event name and kind, the project's violations since ``since``, ordered by
        name and kind (grouped by the database, over the (project, at) index)."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"project_id": project_id, "at": {"$gte": since}}},
            # Newest first, so each group's first entry is its example and its last seen.
            {"$sort": {"at": -1}},
            {"$group": {"_id": {"name": "$name", "kind": "$kind"}, "count": {"$sum": 1},
                        "example": {"$first": "$$ROOT"}}},
        ]
        with translated():
            cursor = await self._log.aggregate(pipeline)
            groups = [doc async for doc in cursor]
        rows = [ViolationSummary(group["_id"]["name"], group["_id"]["kind"],
                                 int(group["count"]), group["example"]["at"],
                                 _entry(group["example"])) for group in groups]
        return sorted(rows, key=lambda row: (row.name, row.kind))
