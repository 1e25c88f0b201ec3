"""The rate_limit_counts and trackd_instances collections: what rate limits share.

Each trackd instance counts the requests it admits per (scope, key) in slots of a few
seconds, and every sync window adds its counts to one document per (scope, key, slot)
with ``$inc`` on its own field (``by.<instance>``), so each instance can tell its own
requests from the others'. The documents expire (TTL index on ``expires_at``) once their
slot is older than the limit's window. ``trackd_instances`` holds one heartbeat per live
instance, so a new key's budget can be split among the instances before they have seen
each other use it.

Counters are not acknowledgements: they are written with ``w: 1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import UpdateOne, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase

from trackd.storage.errors import DRIVER_ERRORS, translate
from trackd.storage.indexes import INSTANCES, RATE_LIMIT_COUNTS

_FAST = WriteConcern(w=1)


def slot_id(scope: str, key: str, slot: int) -> str:
    """The counter document of one (scope, key, slot)."""
    return f"{scope}\x1f{key}\x1f{slot}"


class RateCounterRepository:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._counts = db.get_collection(RATE_LIMIT_COUNTS, write_concern=_FAST)
        self._instances = db.get_collection(INSTANCES, write_concern=_FAST)

    async def publish(self, owner: str,
                      increments: Mapping[str, tuple[int, datetime]]) -> None:
        """Add ``count`` to this instance's field of each slot document (id -> (count,
        expiry)), in one round trip."""
        if not increments:
            return
        ops = [UpdateOne({"_id": doc_id},
                         {"$inc": {f"by.{owner}": count}, "$max": {"expires_at": expires}},
                         upsert=True)
               for doc_id, (count, expires) in increments.items()]
        try:
            await self._counts.bulk_write(ops, ordered=False)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def read(self, doc_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Each existing slot document's counts by instance."""
        ids = list(doc_ids)
        if not ids:
            return {}
        try:
            return {doc["_id"]: {str(k): int(v) for k, v in (doc.get("by") or {}).items()}
                    async for doc in self._counts.find({"_id": {"$in": ids}}, {"by": 1})}
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def heartbeat(self, owner: str, now: datetime, live_within: timedelta) -> int:
        """Record that ``owner`` is alive; how many instances were alive recently."""
        try:
            await self._instances.update_one({"_id": owner}, {"$set": {"seen_at": now}},
                                             upsert=True)
            return await self._instances.count_documents(
                {"seen_at": {"$gt": now - live_within}})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def leave(self, owner: str) -> None:
        try:
            await self._instances.delete_one({"_id": owner})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc


def others(counts: Mapping[str, int], owner: str) -> int:
    return sum(count for who, count in counts.items() if who != owner)


def sharers(docs: Sequence[Mapping[str, int]], owner: str) -> int:
    """How many instances (this one included) counted in these documents."""
    seen = {who for counts in docs for who, count in counts.items() if count > 0}
    seen.add(owner)
    return len(seen)
