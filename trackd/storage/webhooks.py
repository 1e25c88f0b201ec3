"""Webhook endpoints: their settings, secrets, state, delivery position and lease.

One document per endpoint holds everything a deliverer needs to take it over: the URL
and filter, the signing secrets (kept as they are: signing needs them; never returned by
the API), whether it is enabled and why not, the change-stream position delivery has
passed (``cursor``), and the lease of the instance delivering it (``holder`` until
``lease_until``). Every write a deliverer makes names itself as the holder, so an
instance whose lease was taken over changes nothing (:meth:`EndpointRepository.renew`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from trackd.storage.errors import DRIVER_ERRORS, translate
from trackd.storage.indexes import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DEAD_LETTERS,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_QUEUE,
)

# Why an endpoint is disabled, as `trackd webhooks list` and the API say it.
BY_HAND = "by hand"
GONE = "410 gone"
FAILING = "failing 5 days"


@dataclass(frozen=True)
class Secret:
    value: str = field(repr=False)  # whsec_<base64>; never in a repr (logs, tracebacks)
    expires_at: datetime | None = None  # a rotated-out secret signs until then


@dataclass(frozen=True)
class Endpoint:
    id: str
    project_id: str
    url: str
    event_names: list[str]
    batch_size: int
    secrets: list[Secret]
    enabled: bool
    disabled_reason: str
    created_at: datetime
    cursor: dict[str, Any] | None = None
    failing_since: datetime | None = None
    last_error: str = ""
    lag_from: datetime | None = None
    holder: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def signing_secrets(self, now: datetime) -> list[str]:
        return [s.value for s in self.secrets if s.expires_at is None or s.expires_at > now]


def _endpoint(doc: dict[str, Any]) -> Endpoint:
    return Endpoint(
        id=doc["_id"], project_id=doc["project_id"], url=doc["url"],
        event_names=list(doc.get("event_names", [])), batch_size=int(doc["batch_size"]),
        secrets=[Secret(s["value"], s.get("expires_at")) for s in doc["secrets"]],
        enabled=bool(doc["enabled"]), disabled_reason=doc.get("disabled_reason", ""),
        created_at=doc["created_at"], cursor=doc.get("cursor"),
        failing_since=doc.get("failing_since"), last_error=doc.get("last_error", ""),
        lag_from=doc.get("lag_from"), holder=doc.get("holder"))


class EndpointRepository:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._db = db
        self._endpoints = db[WEBHOOK_ENDPOINTS]

    async def insert(self, endpoint_id: str, project_id: str, url: str, event_names: list[str],
                     batch_size: int, secret: str, now: datetime,
                     cursor: dict[str, Any] | None) -> Endpoint:
        """A new enabled endpoint, delivering what is stored after ``cursor``."""
        doc = {"_id": endpoint_id, "project_id": project_id, "url": url,
               "event_names": event_names, "batch_size": batch_size,
               "secrets": [{"value": secret, "expires_at": None}], "enabled": True,
               "disabled_reason": "", "created_at": now, "cursor": cursor,
               "holder": None, "lease_until": None, "queue_seq": 0}
        try:
            await self._endpoints.insert_one(doc)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return _endpoint(doc)

    async def get(self, endpoint_id: str, project_id: str | None = None) -> Endpoint | None:
        query: dict[str, Any] = {"_id": endpoint_id}
        if project_id is not None:
            query["project_id"] = project_id
        try:
            doc = await self._endpoints.find_one(query)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return None if doc is None else _endpoint(doc)

    async def listing(self, project_id: str | None = None) -> list[Endpoint]:
        query = {} if project_id is None else {"project_id": project_id}
        try:
            docs = await self._endpoints.find(query).sort([("created_at", 1), ("_id", 1)]) \
                .to_list(None)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return [_endpoint(doc) for doc in docs]

    async def set_enabled(self, endpoint_id: str, project_id: str | None, enabled: bool,
                          reason: str = "") -> Endpoint | None:
        query: dict[str, Any] = {"_id": endpoint_id}
        if project_id is not None:
            query["project_id"] = project_id
        update: dict[str, Any] = {"enabled": enabled, "disabled_reason": "" if enabled else reason}
        if enabled:
            update["failing_since"] = None
        try:
            doc = await self._endpoints.find_one_and_update(
                query, {"$set": update}, return_document=ReturnDocument.AFTER)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return None if doc is None else _endpoint(doc)

    async def rotate(self, endpoint_id: str, project_id: str | None, secret: str,
                     now: datetime, overlap: timedelta) -> datetime | None:
        """Make ``secret`` the signing secret; the current one signs beside it for
        ``overlap``. None when there is no such endpoint."""
        endpoint = await self.get(endpoint_id, project_id)
        if endpoint is None:
            return None
        until = now + overlap
        kept = [{"value": s.value, "expires_at": s.expires_at} for s in endpoint.secrets
                if s.expires_at is not None and s.expires_at > now]
        current = [{"value": s.value, "expires_at": until} for s in endpoint.secrets
                   if s.expires_at is None]
        try:
            await self._endpoints.update_one(
                {"_id": endpoint_id},
                {"$set": {"secrets": [{"value": secret, "expires_at": None}, *current, *kept]}})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return until

    async def delete(self, endpoint_id: str, project_id: str | None) -> bool:
        query: dict[str, Any] = {"_id": endpoint_id}
        if project_id is not None:
            query["project_id"] = project_id
        try:
            result = await self._endpoints.delete_one(query)
            if result.deleted_count:
                for name in (WEBHOOK_QUEUE, WEBHOOK_DEAD_LETTERS, WEBHOOK_ATTEMPTS):
                    await self._db[name].delete_many({"endpoint_id": endpoint_id})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return bool(result.deleted_count)

    # --- leases and progress (the deliverer) ---------------------------------------------

    async def claim(self, holder: str, now: datetime, lease: timedelta, limit: int,
                    running: list[str] | None = None) -> list[Endpoint]:
        """Take the lease of enabled endpoints nobody holds (or whose holder stopped
        renewing), up to ``limit``, but none of ``running`` (the endpoints the caller
        delivers already: its own lease lapsing, under a stall, must not give it a second
        lane for one endpoint)."""
        claimed: list[Endpoint] = []
        free: dict[str, Any] = {
            "enabled": True, "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]}
        if running:
            free["_id"] = {"$nin": running}
        try:
            candidates = await self._endpoints.find(free, {"_id": 1}).limit(limit).to_list(None)
            for candidate in candidates:
                doc = await self._endpoints.find_one_and_update(
                    {"_id": candidate["_id"], "enabled": True,
                     "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]},
                    {"$set": {"holder": holder, "lease_until": now + lease}},
                    return_document=ReturnDocument.AFTER)
                if doc is not None:
                    claimed.append(_endpoint(doc))
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return claimed

    async def renew(self, endpoint_id: str, holder: str, now: datetime, lease: timedelta,
                    progress: dict[str, Any]) -> Endpoint | None:
        """Extend the lease and record ``progress`` (cursor, lag, errors); None when the
        lease is no longer this holder's or the endpoint is gone or disabled."""
        try:
            doc = await self._endpoints.find_one_and_update(
                {"_id": endpoint_id, "holder": holder, "enabled": True},
                {"$set": {"lease_until": now + lease, **progress}},
                return_document=ReturnDocument.AFTER)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return None if doc is None else _endpoint(doc)

    async def release(self, endpoint_id: str, holder: str,
                      progress: dict[str, Any] | None = None) -> None:
        try:
            await self._endpoints.update_one(
                {"_id": endpoint_id, "holder": holder},
                {"$set": {"holder": None, "lease_until": None, **(progress or {})}})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def disable_held(self, endpoint_id: str, holder: str, reason: str) -> None:
        """The holder disables an endpoint (410, failing for days) and lets it go."""
        try:
            await self._endpoints.update_one(
                {"_id": endpoint_id, "holder": holder},
                {"$set": {"enabled": False, "disabled_reason": reason, "holder": None,
                          "lease_until": None}})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def take_seq(self, endpoint_id: str, count: int) -> int:
        """Reserve ``count`` queue positions of the endpoint; returns the first."""
        try:
            doc = await self._endpoints.find_one_and_update(
                {"_id": endpoint_id}, {"$inc": {"queue_seq": count}},
                return_document=ReturnDocument.AFTER)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        if doc is None:
            raise LookupError(endpoint_id)
        return int(doc["queue_seq"]) - count + 1
