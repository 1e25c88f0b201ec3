"""A user's event history: the events keyed to their external id, oldest first, in pages.

Events point at users by external id (``events.user_id``), so an event stored before its
user existed is in the user's history the moment the user is upserted. Linking an
anonymous id re-keys that id's past anonymous events to the user (:meth:`link`);
joining an earlier user id (PostHog's and Mixpanel's anonymous distinct ids) re-keys the
events stored under it (:meth:`rekey`).
Page tokens are opaque to callers: the (timestamp, _id) of the last event returned.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from trackd.storage.errors import DRIVER_ERRORS, translate
from trackd.storage.indexes import EVENTS


def encode_cursor(timestamp: datetime, object_id: ObjectId) -> str:
    raw = orjson.dumps([int(timestamp.timestamp() * 1000), str(object_id)])
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(token: str) -> tuple[datetime, ObjectId]:
    """Raises ValueError for a token this module did not make."""
    try:
        millis, oid = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromtimestamp(millis / 1000, UTC), ObjectId(oid)
    except Exception as exc:
        raise ValueError("invalid page token") from exc


class EventHistory:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._events = db[EVENTS]

    async def page(
        self, project_id: str, external_id: str, limit: int,
        after: tuple[datetime, ObjectId] | None,
    ) -> tuple[list[dict[str, Any]], str]:
        """A page of the user's events, oldest first, and the next page's token."""
        query: dict[str, Any] = {"project_id": project_id, "user_id": external_id}
        if after is not None:
            ts, oid = after
            query["$or"] = [{"timestamp": {"$gt": ts}}, {"timestamp": ts, "_id": {"$gt": oid}}]
        try:
            cursor = self._events.find(query).sort([("timestamp", 1), ("_id", 1)]).limit(limit + 1)
            docs = [doc async for doc in cursor]
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        if len(docs) <= limit:
            return docs, ""
        last = docs[limit - 1]
        return docs[:limit], encode_cursor(last["timestamp"], last["_id"])

    async def link(self, project_id: str, external_id: str, anonymous_ids: list[str]) -> None:
        """Past anonymous events of these ids now belong to the user.

        Raises the driver's errors: the profile upsert that calls it translates them.
        """
        await self._events.update_many(
            {"project_id": project_id, "user_id": None, "anonymous_id": {"$in": anonymous_ids}},
            {"$set": {"user_id": external_id}})

    async def rekey(self, project_id: str, previous_id: str, external_id: str) -> int:
        """The events stored under ``previous_id`` as a user id are ``external_id``'s
        now; how many. Raises the driver's errors."""
        result = await self._events.update_many(
            {"project_id": project_id, "user_id": previous_id},
            {"$set": {"user_id": external_id}})
        return result.modified_count

    async def forget(self, project_id: str, external_id: str) -> int:
        """Delete every event of the user; how many. Raises the driver's errors."""
        deleted = await self._events.delete_many(
            {"project_id": project_id, "user_id": external_id})
        return deleted.deleted_count
