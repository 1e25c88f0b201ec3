"""The api_keys collection: projects' API keys, stored only as SHA-256 hashes.

:meth:`ApiKeyRepository.changes` follows the collection's change stream, so every
instance's key cache can drop a key the moment it is revoked, whoever revoked it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from trackd.storage.errors import StorageError, translated
from trackd.storage.indexes import API_KEYS
from trackd.storage.records import RecordRepository, StoredRecord
from trackd.storage.streams import followed_changes


class KeyFeedUnsupported(StorageError):
    """The database offers no change streams: cached keys expire by time only."""


@dataclass(frozen=True)
class KeyChanged:
    """A key was inserted, changed or deleted; ``key_hash`` empty when unknown (deleted)."""

    key_id: str
    key_hash: str


def _key_changed(change: Mapping[str, Any]) -> KeyChanged:
    doc = change.get("fullDocument") or {}
    return KeyChanged(str(change.get("documentKey", {}).get("_id", "")),
                      str(doc.get("key_hash", "")))


@dataclass(frozen=True, kw_only=True)
class ApiKeyRecord(StoredRecord):
    """An API key as stored: never the secret itself, only its hash."""

    ID_FIELD: ClassVar[str] = "key_id"

    key_id: str
    scopes: tuple[str, ...] = ()
    revoked_at: datetime | None = None
    # The websites the key may write events for; empty = any of its project's.
    websites: tuple[str, ...] = ()

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class ApiKeyRepository(RecordRepository[ApiKeyRecord]):
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        super().__init__(db[API_KEYS], ApiKeyRecord)
        self._keys = self._collection

    async def insert(
        self, key_id: str, key_hash: str, project_id: str, scopes: list[str],
        websites: list[str] | None = None, *, development: bool = False,
    ) -> ApiKeyRecord | None:
        """Store a key; a ``development`` key only while the project has no active
        development key (else None: another process made it at the same moment)."""
        doc: dict[str, Any] = {
            "_id": key_id,
            "key_hash": key_hash,
            "project_id": project_id,
            "scopes": scopes,
            "created_at": datetime.now(UTC),
            "revoked_at": None,
        }
        if websites:
            doc["websites"] = websites
        if development:
            doc["dev_project"] = project_id
        try:
            return await self._insert(doc)
        except StorageError as exc:
            if development and isinstance(exc.__cause__, DuplicateKeyError):
                return None
            raise

    async def find_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        return await self._find_one({"key_hash": key_hash})

    async def revoke(self, key_id: str) -> bool:
        """Mark a key revoked; False when no such (unrevoked) key exists."""
        with translated():
            result = await self._keys.update_one(
                {"_id": key_id, "revoked_at": None},
                {"$set": {"revoked_at": datetime.now(UTC)}, "$unset": {"dev_project": ""}},
            )
        return result.modified_count == 1

    def changes(self) -> AsyncIterator[KeyChanged | None]:
        """Every change to a key, as it commits (:func:`trackd.storage.streams.followed_changes`);
        None first, once the stream is open.

        Raises :class:`KeyFeedUnsupported` on a standalone server, StorageUnavailable when
        the stream fails (changes may have been missed: the caller must forget all keys).
        """
        return followed_changes(self._keys, KeyFeedUnsupported, _key_changed)

    async def project_has_active_key(self, project_id: str) -> bool:
        with translated():
            doc = await self._keys.find_one({"project_id": project_id, "revoked_at": None})
        return doc is not None
