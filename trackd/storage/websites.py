"""The websites collection: the sites whose browsers may track with only a website id.

A website belongs to one project and lists the origins its pages are served from
(canonical ``scheme://host[:port]`` strings; callers canonicalise them). Its id is a UUID
and its ``_id``; ``allow_server_side`` says whether a request without an ``Origin``
header (a server, curl) may use the website id too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from pymongo.asynchronous.database import AsyncDatabase

from trackd.storage.errors import translated
from trackd.storage.indexes import WEBSITES
from trackd.storage.records import RecordRepository, StoredRecord


@dataclass(frozen=True, kw_only=True)
class WebsiteRecord(StoredRecord):
    """A website as stored."""

    ID_FIELD: ClassVar[str] = "website_id"

    website_id: str
    origins: tuple[str, ...] = ()
    allow_server_side: bool = True


class WebsiteRepository(RecordRepository[WebsiteRecord]):
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        super().__init__(db[WEBSITES], WebsiteRecord)

    async def insert(
        self, website_id: str, project_id: str, origins: Sequence[str],
        *, allow_server_side: bool = True,
    ) -> WebsiteRecord:
        return await self._insert({
            "_id": website_id,
            "project_id": project_id,
            "origins": list(origins),
            "allow_server_side": allow_server_side,
            "created_at": datetime.now(UTC),
        })

    async def get_many(self, website_ids: Sequence[str]) -> dict[str, WebsiteRecord]:
        """The websites among ``website_ids`` that exist, by id (of any project)."""
        if not website_ids:
            return {}
        with translated():
            cursor = self._collection.find({"_id": {"$in": list(website_ids)}})
            return {doc["_id"]: self._record(doc) async for doc in cursor}

    async def get(self, website_id: str) -> WebsiteRecord | None:
        return (await self.get_many([website_id])).get(website_id)
