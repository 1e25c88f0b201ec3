"""The tracking_plans collection: each project's tracking plan, one document per version.

A version is never changed: setting a plan inserts the next version number, and the
unique (project, version) index makes two concurrent setters take different numbers. The
plan itself is kept as the JSON text it was checked as (a JSON Schema's ``$schema``,
``$ref`` and ``$defs`` keys cannot be MongoDB field names). :meth:`PlanRepository.changes`
follows the collection's change stream, so every instance drops a project's cached plan
the moment a new version commits, whoever set it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from trackd.storage.errors import DRIVER_ERRORS, StorageError, translate, translated
from trackd.storage.indexes import TRACKING_PLANS
from trackd.storage.streams import followed_changes

# How many times a setter that lost the race for a version number tries the next one.
_INSERT_ATTEMPTS = 10


class PlanFeedUnsupported(StorageError):
    """The database offers no change streams: cached plans expire by time only."""


@dataclass(frozen=True)
class PlanRecord:
    """One version of a project's plan, as stored."""

    project_id: str
    version: int
    plan_json: str
    created_at: datetime


def _record(doc: dict[str, Any]) -> PlanRecord:
    return PlanRecord(doc["project_id"], int(doc["version"]), doc["plan_json"],
                      doc["created_at"])


def _changed_project(change: Mapping[str, Any]) -> str:
    doc = change.get("fullDocument") or {}
    # A change without the document (a deletion by hand): "", every project.
    return str(doc.get("project_id", "")) or ""


class PlanRepository:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._plans = db[TRACKING_PLANS]

    async def insert_next(self, project_id: str, plan_json: str) -> PlanRecord:
        """Store ``plan_json`` as the project's next version."""
        for _ in range(_INSERT_ATTEMPTS):
            latest = await self.current(project_id)
            doc = {"project_id": project_id,
                   "version": 1 if latest is None else latest.version + 1,
                   "plan_json": plan_json, "created_at": datetime.now(UTC)}
            try:
                await self._plans.insert_one(doc)
            except DuplicateKeyError:
                continue  # another setter took this number: take the next
            except DRIVER_ERRORS as exc:
                raise translate(exc) from exc
            return _record(doc)
        raise StorageError("could not take a plan version number: too many concurrent setters")

    async def current(self, project_id: str) -> PlanRecord | None:
        """The project's latest version (None: it has no plan)."""
        with translated():
            doc = await self._plans.find_one({"project_id": project_id},
                                             sort=[("version", DESCENDING)])
        return None if doc is None else _record(doc)

    async def get(self, project_id: str, version: int) -> PlanRecord | None:
        with translated():
            doc = await self._plans.find_one({"project_id": project_id, "version": version})
        return None if doc is None else _record(doc)

    def changes(self) -> AsyncIterator[str | None]:
        """The project of every new version, as it commits; None first, once the stream
        is open.

        Raises :class:`PlanFeedUnsupported` on a standalone server, StorageUnavailable
        when the stream fails (changes may have been missed: forget every plan).
        """
        return followed_changes(self._plans, PlanFeedUnsupported, _changed_project)
