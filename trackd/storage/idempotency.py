"""The idempotency_keys collection: one record per (project, scope, key) for 24 hours.

A record is ``pending`` while the first request holding the key runs, then
``completed`` with the serialized response to replay. A pending record can be taken over
by a new request when its lease has run out (its request's process died), or at once by
its own ``owner`` (a process that knows it no longer runs that request: the release was
lost with the database); so can any record older than 24 hours (the TTL monitor has not
reaped it yet). The lease is short and its holder renews it while the request runs
(:meth:`IdempotencyRepository.renew`), so a live holder keeps its key and a dead one's is
taken over a lease later. Leases compare the instances' clocks: keep them in sync (NTP).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from trackd.storage.errors import DRIVER_ERRORS, StorageUnavailable, translate
from trackd.storage.indexes import IDEMPOTENCY, IDEMPOTENCY_TTL_SECONDS

PENDING = "pending"
COMPLETED = "completed"


@dataclass(frozen=True)
class IdempotencyRecord:
    fingerprint: str
    state: str
    response: bytes | None


@dataclass(frozen=True)
class Reservation:
    """The caller now holds the key; it must :meth:`complete` or :meth:`release` it."""

    record_id: ObjectId
    owner: str = ""


class IdempotencyRepository:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._records = db[IDEMPOTENCY]

    async def reserve(
        self,
        project_id: str,
        scope: str,
        key: str,
        fingerprint: str,
        now: datetime,
        lease: timedelta,
        owner: str = "",
    ) -> Reservation | IdempotencyRecord:
        """Take the key, or return the record that holds it.

        ``owner`` identifies the calling process; it must call only while it runs no
        request of its own with this key, so its own pending record is abandoned.
        """
        ident = {"project_id": project_id, "scope": scope, "key": key}
        fresh = {"fingerprint": fingerprint, "state": PENDING, "response": None,
                 "created_at": now, "lease_until": now + lease, "owner": owner}
        try:
            for _ in range(5):
                record_id = ObjectId()
                try:
                    await self._records.insert_one({"_id": record_id, **ident, **fresh})
                    return Reservation(record_id, owner)
                except DuplicateKeyError:
                    pass
                doc = await self._records.find_one(ident)
                if doc is None:
                    continue  # released or reaped meanwhile: try to insert again
                expired = doc["created_at"] <= now - timedelta(seconds=IDEMPOTENCY_TTL_SECONDS)
                abandoned = doc["state"] == PENDING and (
                    doc["lease_until"] <= now or (owner and doc.get("owner") == owner))
                if not (expired or abandoned):
                    return IdempotencyRecord(doc["fingerprint"], doc["state"], doc["response"])
                taken = await self._records.update_one(
                    {"_id": doc["_id"], "state": doc["state"], "created_at": doc["created_at"]},
                    {"$set": fresh},
                )
                if taken.modified_count == 1:
                    return Reservation(doc["_id"], owner)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        raise StorageUnavailable("idempotency key is contended; retry")

    async def renew(self, reservation: Reservation, now: datetime, lease: timedelta) -> bool:
        """Extend the lease of a reservation still held; False when it was taken over."""
        try:
            result = await self._records.update_one(
                {"_id": reservation.record_id, "state": PENDING, "owner": reservation.owner},
                {"$set": {"lease_until": now + lease}})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return result.matched_count == 1

    async def complete(self, reservation: Reservation, response: bytes) -> None:
        try:
            await self._records.update_one(
                {"_id": reservation.record_id},
                {"$set": {"state": COMPLETED, "response": response}},
            )
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def release(self, reservation: Reservation) -> None:
        """Forget a reservation whose request failed, so a retry can run it again."""
        # If the database is gone, the lease runs out on its own.
        with contextlib.suppress(PyMongoError):
            await self._records.delete_one({"_id": reservation.record_id, "state": PENDING})
