"""The roster: each project's external ids in ``ROSTER_BUCKETS`` documents.

"Which users exist" then costs a few document reads instead of a scan of every profile
(audiences need it for every evaluation). A user's bucket is a hash of the external id.
The profiles (:mod:`trackd.storage.users`) keep it: an upsert (re-)enrols its user, and a
deletion withdraws the user before anything else goes, so the roster never names a user
whose deletion has begun, and any enrolment lost to a crash is restored by the user's
next upsert.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from trackd.storage.errors import DRIVER_ERRORS, translate
from trackd.storage.indexes import ROSTER, USERS

ROSTER_BUCKETS = 64


def roster_bucket(external_id: str) -> int:
    return zlib.crc32(external_id.encode()) % ROSTER_BUCKETS


class Roster:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._roster = db[ROSTER]
        self._users = db[USERS]

    async def ids(self, project_id: str) -> set[str]:
        """Every external id of the project's users."""
        try:
            return {external_id async for doc in self._roster.find({"project_id": project_id})
                    for external_id in doc.get("ids", ())}
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def enrol(self, project_id: str, external_ids: list[str]) -> None:
        """Add users (idempotently). Raises the driver's errors: callers translate."""
        buckets: dict[int, list[str]] = defaultdict(list)
        for external_id in external_ids:
            buckets[roster_bucket(external_id)].append(external_id)
        if not buckets:
            return
        ops = [UpdateOne({"project_id": project_id, "bucket": bucket},
                         {"$addToSet": {"ids": {"$each": ids}}}, upsert=True)
               for bucket, ids in buckets.items()]
        try:
            await self._roster.bulk_write(ops, ordered=False)
        except BulkWriteError:
            # A concurrent first enrolment created the same bucket; now it exists.
            await self._roster.bulk_write(ops, ordered=False)

    async def withdraw(self, project_id: str, external_id: str) -> None:
        """Remove a user. Raises the driver's errors: callers translate."""
        await self._roster.update_one(
            {"project_id": project_id, "bucket": roster_bucket(external_id)},
            {"$pull": {"ids": external_id}})

    async def rebuild(self) -> None:
        """Write the roster from the profiles (a database from before the roster).

        Each bucket is written whole, once: `$addToSet` of thousands of ids checks each
        against the whole array (minutes for 100k users on the embedded database). Meant
        for start-up, before serving: an enrolment racing it is restored by that user's
        next upsert.
        """
        buckets: dict[tuple[str, int], set[str]] = defaultdict(set)
        try:
            async for doc in self._users.find({}, {"project_id": 1, "external_id": 1,
                                                   "_id": 0}):
                external_id = doc["external_id"]
                buckets[(doc["project_id"], roster_bucket(external_id))].add(external_id)
            if buckets:
                await self._roster.bulk_write([
                    UpdateOne({"project_id": project_id, "bucket": bucket},
                              {"$set": {"ids": sorted(ids)}}, upsert=True)
                    for (project_id, bucket), ids in buckets.items()], ordered=False)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def ensure(self) -> None:
        """At start-up: build the roster once if users exist and it does not."""
        try:
            missing = await self._roster.find_one({}, {"_id": 1}) is None and \
                await self._users.find_one({}, {"_id": 1}) is not None
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        if missing:
            await self.rebuild()
