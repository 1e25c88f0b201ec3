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
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from storage.errors import DRIVER_ERRORS, translate
from storage.indexes import WEBSITES


@dataclass(frozen=True)
class WebsiteRecord:
    """A website as stored."""

    website_id: str
    project_id: str
    origins: tuple[str, ...]
    allow_server_side: bool
    created_at: datetime


def _record(doc: dict[str, Any]) -> WebsiteRecord:
    return WebsiteRecord(
        website_id=doc["_id"],
        project_id=doc["project_id"],
        origins=tuple(doc.get("origins", ())),
        allow_server_side=bool(doc.get("allow_server_side", True)),
        created_at=doc["created_at"],
    )


class WebsiteRepository:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._websites = db[WEBSITES]

    async def insert(
        self, website_id: str, project_id: str, origins: Sequence[str],
        *, allow_server_side: bool = True,
    ) -> WebsiteRecord:
        doc = {
            "_id": website_id,
            "project_id": project_id,
            "origins": list(origins),
            "allow_server_side": allow_server_side,
            "created_at": datetime.now(UTC),
        }
        try:
            await self._websites.insert_one(doc)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return _record(doc)

    async def get_many(self, website_ids: Sequence[str]) -> dict[str, WebsiteRecord]:
        """The websites among ``website_ids`` that exist, by id (of any project)."""
        if not website_ids:
            return {}
        try:
            cursor = self._websites.find({"_id": {"$in": list(website_ids)}})
            return {doc["_id"]: _record(doc) async for doc in cursor}
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def get(self, website_id: str) -> WebsiteRecord | None:
        return (await self.get_many([website_id])).get(website_id)

    async def list(self, project_id: str | None = None) -> list[WebsiteRecord]:
        query = {} if project_id is None else {"project_id": project_id}
        try:
            return [_record(doc)
                    async for doc in self._websites.find(query).sort("created_at", 1)]
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
