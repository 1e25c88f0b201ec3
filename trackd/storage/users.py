"""The users collection: one profile per (project, external id), and user deletion.

An upsert keeps the two things derived from profiles in step: it enrols the user in the
project's roster (:mod:`trackd.storage.roster`) and links its anonymous ids' past events to it
(:mod:`trackd.storage.history`). A deletion withdraws the user from the roster first, then
deletes their events, then the profile, so an interrupted deletion can be retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from trackd.storage.errors import DRIVER_ERRORS, StorageError, StorageUnavailable, translate
from trackd.storage.history import EventHistory
from trackd.storage.indexes import USERS
from trackd.storage.roster import Roster


@dataclass
class UserChange:
    """What one upsert or update changes; absent fields stay as they are."""

    set_fields: dict[str, Any] = field(default_factory=dict)
    unset_fields: list[str] = field(default_factory=list)
    set_traits: dict[str, Any] = field(default_factory=dict)
    unset_traits: list[str] = field(default_factory=list)
    add_emails: list[str] = field(default_factory=list)
    add_phones: list[str] = field(default_factory=list)
    add_anonymous_ids: list[str] = field(default_factory=list)
    # Traits set only where the user has none of that name (applied after the upsert).
    set_once_traits: dict[str, Any] = field(default_factory=dict)

    def update(self, now: datetime) -> dict[str, Any]:
        update: dict[str, Any] = {
            "$set": {**self.set_fields, "updated_at": now,
                     **{f"traits.{k}": v for k, v in self.set_traits.items()}},
            "$setOnInsert": {"created_at": now},
        }
        unset = [*self.unset_fields, *(f"traits.{k}" for k in self.unset_traits)]
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        add = {name: {"$each": values} for name, values in (
            ("emails", self.add_emails), ("phones", self.add_phones),
            ("anonymous_ids", self.add_anonymous_ids)) if values}
        if add:
            update["$addToSet"] = add
        return update


class UserRepository:
    def __init__(self, db: AsyncDatabase[Any], roster: Roster, history: EventHistory) -> None:
        self._users = db[USERS]
        self._roster = roster
        self._history = history

    async def upsert(
        self, project_id: str, external_id: str, change: UserChange, now: datetime,
        *, create: bool = True,
    ) -> tuple[dict[str, Any] | None, bool]:
        """Apply ``change``; returns (the user after it, whether it was created).

        With ``create=False`` a missing user is not created: (None, False).
        """
        query = {"project_id": project_id, "external_id": external_id}
        try:
            for _ in range(2):  # two concurrent first upserts: one inserts, one retries
                try:
                    result = await self._users.update_one(query, change.update(now),
                                                          upsert=create)
                    break
                except DuplicateKeyError:
                    continue
            else:
                raise StorageError("user upsert kept colliding")
            if not create and result.matched_count == 0:
                return None, False
            for key, value in change.set_once_traits.items():
                if key not in change.set_traits:
                    # Conditional on the trait's absence, so a concurrent writer's wins.
                    await self._users.update_one(
                        {**query, f"traits.{key}": {"$exists": False}},
                        {"$set": {f"traits.{key}": value}})
            doc = await self._users.find_one(query)
            # Only a request adding addresses promotes one; a cleared primary stays cleared.
            if doc is not None and not doc.get("email") and change.add_emails \
                    and "email" not in change.unset_fields:
                doc = await self._promote(query, "email", doc["emails"][0]) or doc
            if doc is not None and not doc.get("phone") and change.add_phones \
                    and "phone" not in change.unset_fields:
                doc = await self._promote(query, "phone", doc["phones"][0]) or doc
            if change.add_anonymous_ids:
                await self._history.link(project_id, external_id, change.add_anonymous_ids)
            await self._roster.enrol(project_id, [external_id])
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return doc, result.upserted_id is not None

    async def bulk_upsert(
        self, project_id: str, records: list[tuple[str, UserChange]], now: datetime
    ) -> list[bool | str]:
        """Upsert many users in one round trip; per record: created?, or why it failed."""
        if not records:
            return []
        outcomes: list[bool | str] = [False] * len(records)
        ops = [UpdateOne({"project_id": project_id, "external_id": external_id},
                         change.update(now), upsert=True)
               for external_id, change in records]
        try:
            try:
                result = await self._users.bulk_write(ops, ordered=False)
                upserted: dict[int, Any] = result.upserted_ids or {}
            except BulkWriteError as exc:
                if exc.details.get("writeConcernErrors"):
                    raise StorageUnavailable("write not confirmed durable") from exc
                for error in exc.details.get("writeErrors", []):
                    outcomes[error["index"]] = str(error.get("errmsg", "write failed"))
                upserted = {item["index"]: item["_id"] for item in exc.details.get("upserted", [])}
            for index in upserted:
                if not isinstance(outcomes[index], str):
                    outcomes[index] = True
            promotions = [
                UpdateOne({"project_id": project_id, "external_id": external_id,
                           name: {"$in": [None, ""]}}, {"$set": {name: values[0]}})
                for (external_id, change), outcome in zip(records, outcomes, strict=True)
                if not isinstance(outcome, str)
                for name, values in (("email", change.add_emails), ("phone", change.add_phones))
                if values and name not in change.set_fields and name not in change.unset_fields
            ]
            if promotions:
                await self._users.bulk_write(promotions, ordered=False)
            for external_id, change in records:
                if change.add_anonymous_ids:
                    await self._history.link(project_id, external_id, change.add_anonymous_ids)
            await self._roster.enrol(project_id, [external_id for (external_id, _), outcome
                                           in zip(records, outcomes, strict=True)
                                           if not isinstance(outcome, str)])
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return outcomes

    async def _promote(self, query: dict[str, Any], name: str, value: str) -> Any:
        """Make the first address seen the primary one, unless one was set meanwhile."""
        return await self._users.find_one_and_update(
            {**query, name: {"$in": [None, ""]}}, {"$set": {name: value}},
            return_document=ReturnDocument.AFTER)

    async def merge_history(self, project_id: str, previous_id: str,
                            external_id: str) -> int:
        """``previous_id``'s events (stored under it as a user id) join ``external_id``'s,
        unless ``previous_id`` is a user of its own; how many moved."""
        try:
            if previous_id == external_id or await self._users.find_one(
                    {"project_id": project_id, "external_id": previous_id}, {"_id": 1}):
                return 0
            return await self._history.rekey(project_id, previous_id, external_id)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def get(self, project_id: str, *, external_id: str = "",
                  email: str = "") -> dict[str, Any] | None:
        query: dict[str, Any] = {"project_id": project_id}
        if external_id:
            query["external_id"] = external_id
        else:
            query["email"] = email
        try:
            doc: dict[str, Any] | None = await self._users.find_one(query)
            return doc
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def existing(self, project_id: str, external_ids: list[str]) -> set[str]:
        """Which of ``external_ids`` are users of the project."""
        try:
            cursor = self._users.find(
                {"project_id": project_id, "external_id": {"$in": external_ids}},
                {"external_id": 1, "_id": 0})
            return {doc["external_id"] async for doc in cursor}
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def owners_of_anonymous_ids(
        self, project_id: str, anonymous_ids: list[str]
    ) -> dict[str, str]:
        """anonymous id -> external id of the user it was linked to."""
        try:
            cursor = self._users.find(
                {"project_id": project_id, "anonymous_ids": {"$in": anonymous_ids}},
                {"external_id": 1, "anonymous_ids": 1, "_id": 0})
            wanted = set(anonymous_ids)
            owners: dict[str, str] = {}
            async for doc in cursor:
                for anonymous_id in doc.get("anonymous_ids", ()):
                    if anonymous_id in wanted:
                        owners[anonymous_id] = doc["external_id"]
            return owners
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def delete(self, project_id: str, external_id: str) -> int | None:
        """Delete the user and all their events; None when there is no such user."""
        query = {"project_id": project_id, "external_id": external_id}
        try:
            if await self._users.find_one(query, {"_id": 1}) is None:
                return None
            # Out of the roster first (no audience can name the user from here on), then
            # the events, then the profile: if this is interrupted, the profile is still
            # there for the retry, and a later upsert enrols the user again.
            await self._roster.withdraw(project_id, external_id)
            deleted = await self._history.forget(project_id, external_id)
            await self._users.delete_one(query)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return deleted
