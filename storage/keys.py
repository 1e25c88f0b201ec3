"""The api_keys collection: projects' API keys, stored only as SHA-256 hashes.

:meth:`ApiKeyRepository.changes` follows the collection's change stream, so every
instance's key cache can drop a key the moment it is revoked, whoever revoked it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from storage.errors import DRIVER_ERRORS, StorageError, translate
from storage.indexes import API_KEYS
from storage.streams import CHANGE_WAIT_MS, EMPTY_ANSWER_GAP_SECONDS, NO_CHANGE_STREAMS


class KeyFeedUnsupported(StorageError):
    """The database offers no change streams: cached keys expire by time only."""


@dataclass(frozen=True)
class KeyChanged:
    """A key was inserted, changed or deleted; ``key_hash`` empty when unknown (deleted)."""

    key_id: str
    key_hash: str


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
            await self._keys.insert_one(doc)
        except DuplicateKeyError as exc:
            if development:
                return None
            raise translate(exc) from exc
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return _record(doc)

    async def find_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        try:
            doc = await self._keys.find_one({"key_hash": key_hash})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return None if doc is None else _record(doc)

    async def revoke(self, key_id: str) -> bool:
        """Mark a key revoked; False when no such (unrevoked) key exists."""
        try:
            result = await self._keys.update_one(
                {"_id": key_id, "revoked_at": None},
                {"$set": {"revoked_at": datetime.now(UTC)}, "$unset": {"dev_project": ""}},
            )
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return result.modified_count == 1

    async def list(self, project_id: str | None = None) -> list[ApiKeyRecord]:
        query = {} if project_id is None else {"project_id": project_id}
        try:
            return [_record(doc) async for doc in self._keys.find(query).sort("created_at", 1)]
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def changes(self) -> AsyncIterator[KeyChanged | None]:
        """Every change to a key, as it commits (within :data:`EMPTY_ANSWER_GAP_SECONDS`);
        None first, once the stream is open.

        Raises :class:`KeyFeedUnsupported` on a standalone server, StorageUnavailable when
        the stream fails (changes may have been missed: the caller must forget all keys).
        """
        try:
            async with await self._keys.watch(full_document="updateLookup",
                                              max_await_time_ms=CHANGE_WAIT_MS) as stream:
                yield None
                loop = asyncio.get_running_loop()
                while stream.alive:
                    asked = loop.time()
                    change = await stream.try_next()
                    if change is None:  # an empty answer: ask again, not too soon
                        await asyncio.sleep(EMPTY_ANSWER_GAP_SECONDS - (loop.time() - asked))
                        continue
                    doc = change.get("fullDocument") or {}
                    yield KeyChanged(str(change.get("documentKey", {}).get("_id", "")),
                                     str(doc.get("key_hash", "")))
        except OperationFailure as exc:
            if exc.code in NO_CHANGE_STREAMS:
                raise KeyFeedUnsupported(str(exc)) from exc
            raise translate(exc) from exc
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def project_has_active_key(self, project_id: str) -> bool:
        try:
            doc = await self._keys.find_one({"project_id": project_id, "revoked_at": None})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return doc is not None
