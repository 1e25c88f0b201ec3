"""The queries behind audience evaluation: per-user event statistics and profiles.

Statistics are computed from the raw events, by aggregations the
``project_name_user_timestamp`` and ``project_user_timestamp`` indexes serve: for a
whole project when the server's audience index loads it (trackd/server/audiences/index.py), for
a few users whose indexed statistics are in doubt, and for every evaluation when there is
no index (or a rule has a since/before window). Ingest writes nothing extra for them
(see bench/audiences.py for the statistics collection this was measured against).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from trackd.storage.errors import DRIVER_ERRORS, translate
from trackd.storage.indexes import EVENTS, USERS
from trackd.storage.roster import Roster

# Past this many ids a query reads by its index prefix and filters here instead of using
# `$in`: SecantusDB's `$in` grows with the square of the list (measured: 500 ids 0.29 s,
# 5,000 ids 25 s), while a prefix read costs ~35 µs per document.
IN_LOOKUP_LIMIT = 64
SCAN_ABOVE = 20_000


@dataclass(frozen=True, slots=True)
class EventStats:
    """One user's occurrences of one event (within the queried window); first and last
    in seconds since the epoch."""

    count: int
    first: float
    last: float

    def plus(self, timestamp: float) -> EventStats:
        """These statistics with one more occurrence, at ``timestamp``."""
        return EventStats(self.count + 1, min(self.first, timestamp),
                          max(self.last, timestamp))


def _stats(doc: dict[str, Any]) -> EventStats:
    return EventStats(doc["count"], doc["first"].timestamp(), doc["last"].timestamp())


def occurrence(doc: dict[str, Any]) -> tuple[str, str, float] | None:
    """(user, event name, epoch seconds) of an event document; None when it counts for
    nobody: an anonymous event, or a document trackd did not write (no name, a timestamp
    that is not a date)."""
    user, name, when = doc.get("user_id"), doc.get("name"), doc.get("timestamp")
    if not isinstance(user, str) or not user or not isinstance(name, str) or \
            not isinstance(when, datetime):
        return None
    return user, name, when.timestamp()


_GROUP = {"count": {"$sum": 1}, "first": {"$min": "$timestamp"},
          "last": {"$max": "$timestamp"}}


class AudienceQueries:
    def __init__(self, db: AsyncDatabase[Any], roster: Roster) -> None:
        self._events = db[EVENTS]
        self._users = db[USERS]
        self._roster = roster

    async def user_ids(self, project_id: str) -> set[str]:
        """Every user of the project, from the roster (a few documents, not a scan)."""
        return await self._roster.ids(project_id)

    async def event_stats(
        self,
        project_id: str,
        name: str,
        *,
        since: datetime | None = None,
        before: datetime | None = None,
        users: Collection[str] | None = None,
    ) -> dict[str, EventStats]:
        """Per user (of ``users``, or all), their count, first and last of ``name``."""
        match: dict[str, Any] = {"project_id": project_id, "name": name}
        narrow = users is not None and len(users) <= IN_LOOKUP_LIMIT
        if narrow:
            match["user_id"] = {"$in": list(users)}  # type: ignore[arg-type]
        # No `user_id: {$ne: null}` for "all users": it costs SecantusDB its index bounds
        # (measured: 1.4 s instead of 40 ms); anonymous events are dropped below instead.
        window: dict[str, datetime] = {}
        if since is not None:
            window["$gte"] = since
        if before is not None:
            window["$lt"] = before
        if window:
            match["timestamp"] = window
        pipeline = [{"$match": match}, {"$group": {"_id": "$user_id", **_GROUP}}]
        try:
            cursor = await self._events.aggregate(pipeline)
            return {doc["_id"]: _stats(doc) async for doc in cursor
                    if doc["_id"] is not None and (users is None or doc["_id"] in users)}
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def profiles(
        self, project_id: str, fields: Iterable[str], users: Collection[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """external id -> the requested profile fields, for ``users`` (or every user).

        Ids are looked up in chunks of ``IN_LOOKUP_LIMIT`` (short `$in` lists stay cheap),
        up to ``SCAN_ABOVE`` of them; past that, reading every profile costs less.
        """
        projection = {"_id": 0, "external_id": 1, **dict.fromkeys(fields, 1)}
        everyone = {"project_id": project_id}
        try:
            if users is None or len(users) > SCAN_ABOVE:
                return {doc["external_id"]: doc
                        async for doc in self._users.find(everyone, projection)
                        if users is None or doc["external_id"] in users}
            ids = list(users)
            found: dict[str, dict[str, Any]] = {}
            for start in range(0, len(ids), IN_LOOKUP_LIMIT):
                chunk = ids[start:start + IN_LOOKUP_LIMIT]
                query = {**everyone, "external_id": {"$in": chunk}}
                async for doc in self._users.find(query, projection):
                    found[doc["external_id"]] = doc
            return found
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def every_event_stats(self, project_id: str) -> dict[str, dict[str, EventStats]]:
        """event name -> user -> statistics over the project's whole history: one read of
        each event (by the ``project_user_timestamp`` index's prefix), summed here."""
        stats: dict[str, dict[str, EventStats]] = {}
        projection = {"_id": 0, "user_id": 1, "name": 1, "timestamp": 1}
        try:
            cursor = self._events.find({"project_id": project_id}, projection,
                                       batch_size=10_000)
            async for doc in cursor:
                seen = occurrence(doc)
                if seen is None:
                    continue
                user, name, moment = seen
                by_user = stats.setdefault(name, {})
                known = by_user.get(user)
                by_user[user] = EventStats(1, moment, moment) if known is None \
                    else known.plus(moment)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return stats

    async def stats_of_users(
        self, project_id: str, users: Collection[str]
    ) -> dict[str, dict[str, EventStats]]:
        """user -> event name -> statistics, for a few users (in short `$in` chunks)."""
        found: dict[str, dict[str, EventStats]] = {user: {} for user in users}
        ids = list(users)
        try:
            for start in range(0, len(ids), IN_LOOKUP_LIMIT):
                pipeline: list[dict[str, Any]] = [
                    {"$match": {"project_id": project_id,
                                "user_id": {"$in": ids[start:start + IN_LOOKUP_LIMIT]}}},
                    {"$group": {"_id": {"user": "$user_id", "name": "$name"}, **_GROUP}},
                ]
                async for doc in await self._events.aggregate(pipeline):
                    found[doc["_id"]["user"]][doc["_id"]["name"]] = _stats(doc)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return found

    async def user_document_ids(self, project_id: str) -> dict[Any, str]:
        """The project's users: profile document id -> external id."""
        try:
            return {doc["_id"]: doc["external_id"] async for doc in self._users.find(
                {"project_id": project_id}, {"external_id": 1}, batch_size=10_000)}
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
