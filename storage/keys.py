"""The api_keys collection: projects' API keys, stored only as SHA-256 hashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from storage.errors import translate
from storage.indexes import API_KEYS


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as stored: never the secret itself, only its hash."""

    key_id: str
    project_id: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    # The websites the key may write events for; empty = any of its project's.
    websites: tuple[str, ...] = ()

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _record(doc: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=doc["_id"],
        project_id=doc["project_id"],
        scopes=tuple(doc.get("scopes", ())),
        created_at=doc["created_at"],
        revoked_at=doc.get("revoked_at"),
        websites=tuple(doc.get("websites", ())),
    )


class ApiKeyRepository:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._keys = db[API_KEYS]

    async def insert(
        self, key_id: str, key_hash: str, project_id: str, scopes: list[str],
        websites: list[str] | None = None,
    ) -> ApiKeyRecord:
        doc = {
            "_id": key_id,
            "key_hash": key_hash,
            "project_id": project_id,
            "scopes": scopes,
            "created_at": datetime.now(UTC),
            "revoked_at": None,
        }
        if websites:
            doc["websites"] = websites
        try:
            await self._keys.insert_one(doc)
        except PyMongoError as exc:
            raise translate(exc) from exc
        return _record(doc)

    async def find_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        try:
            doc = await self._keys.find_one({"key_hash": key_hash})
        except PyMongoError as exc:
            raise translate(exc) from exc
        return None if doc is None else _record(doc)

    async def revoke(self, key_id: str) -> bool:
        """Mark a key revoked; False when no such (unrevoked) key exists."""
        try:
            result = await self._keys.update_one(
                {"_id": key_id, "revoked_at": None}, {"$set": {"revoked_at": datetime.now(UTC)}}
            )
        except PyMongoError as exc:
            raise translate(exc) from exc
        return result.modified_count == 1

    async def list(self, project_id: str | None = None) -> list[ApiKeyRecord]:
        query = {} if project_id is None else {"project_id": project_id}
        try:
            return [_record(doc) async for doc in self._keys.find(query).sort("created_at", 1)]
        except PyMongoError as exc:
            raise translate(exc) from exc

    async def project_has_active_key(self, project_id: str) -> bool:
        try:
            doc = await self._keys.find_one({"project_id": project_id, "revoked_at": None})
        except PyMongoError as exc:
            raise translate(exc) from exc
        return doc is not None
