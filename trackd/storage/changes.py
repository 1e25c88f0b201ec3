"""The change feed: what changed in events and users, in commit order, from a change stream.

One stream per database (``db.watch``) carries the three collections a derived view of
the events needs, and nothing is written twice to feed it: the events collection's own
inserts, the updates that attribute anonymous events to a user, the deletions of users,
and the marks a reader writes to learn that everything committed before its mark has
been seen (:meth:`ChangeFeed.mark`). Changes reach callers as plain records, the
:data:`Change` union (each record's class says what it stands for): :class:`EventSeen`,
:class:`UserTouched`, :class:`UserCreated`, :class:`UserRemoved`, :class:`Marked` and
:class:`Lost`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from trackd.storage.audiences import occurrence
from trackd.storage.errors import StorageError, translated
from trackd.storage.indexes import EVENTS, USERS
from trackd.storage.streams import CHANGE_WAIT_MS, watching

log = logging.getLogger(__name__)

MARKS = "change_marks"
_WATCHED = [EVENTS, USERS, MARKS]


class FeedUnsupported(StorageError):
    """The database offers no change streams (a standalone server)."""


@dataclass(frozen=True, slots=True)
class EventSeen:
    """An event now belongs to a user (inserted, or linked to them)."""

    project_id: str
    user_id: str
    name: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class UserTouched:
    """Some event of this user changed in a way a record cannot replay (deleted,
    rewritten): what is known about the user must be read again."""

    project_id: str
    user_id: str


@dataclass(frozen=True, slots=True)
class UserCreated:
    """A profile came, with its document id (what :class:`UserRemoved` carries)."""

    project_id: str
    external_id: str
    document_id: Any


@dataclass(frozen=True, slots=True)
class UserRemoved:
    """A profile went: by document id, since a deletion's change carries nothing else."""

    document_id: Any


@dataclass(frozen=True, slots=True)
class Marked:
    """The ``seq``-th mark ``owner`` wrote (:meth:`ChangeFeed.mark`): every change
    committed before it has arrived already."""

    owner: str
    seq: int


@dataclass(frozen=True, slots=True)
class Lost:
    """Something happened that the records cannot describe (a collection dropped, a
    deletion with no pre-image): everything derived must be rebuilt."""

    reason: str


Change = EventSeen | UserTouched | UserCreated | UserRemoved | Marked | Lost


def _seen(doc: dict[str, Any] | None) -> EventSeen | None:
    """The occurrence an event document stands for (None: it counts for nobody, and the
    project's load skips it too)."""
    if doc is None:
        return None
    seen = occurrence(doc)
    return None if seen is None else EventSeen(doc["project_id"], *seen)


def _event_change(change: dict[str, Any]) -> list[Change]:
    op = change["operationType"]
    after = change.get("fullDocument")
    before = change.get("fullDocumentBeforeChange")
    if op == "insert":
        seen = _seen(after)
        return [seen] if seen is not None else []
    if op in ("update", "replace"):
        if before is None:
            return [Lost(f"an event was {op}d and its earlier version is unknown")]
        if not before.get("user_id"):
            # An anonymous event linked to a user: one more occurrence of theirs. (A
            # version already gone, deleted since, arrives again as that deletion.)
            seen = _seen(after)
            return [seen] if seen is not None else []
        touched: list[Change] = [UserTouched(before["project_id"], before["user_id"])]
        if after is not None and after.get("user_id"):
            touched.append(UserTouched(after["project_id"], after["user_id"]))
        return touched
    if op == "delete":
        if before is None:
            return [Lost("an event was deleted and its earlier version is unknown")]
        return [UserTouched(before["project_id"], before["user_id"])] \
            if before.get("user_id") else []
    return [Lost(f"the events collection saw {op}")]


def _user_change(change: dict[str, Any]) -> list[Change]:
    op = change["operationType"]
    if op == "insert":
        doc = change["fullDocument"]
        return [UserCreated(doc["project_id"], doc["external_id"], doc["_id"])]
    if op == "delete":
        return [UserRemoved(change["documentKey"]["_id"])]
    if op in ("update", "replace"):
        return []  # external ids never change; profiles are read when rules need them
    return [Lost(f"the users collection saw {op}")]


def _mark_change(change: dict[str, Any]) -> list[Change]:
    # Never the looked-up fullDocument of an update: it is the mark as it is when the
    # change is read, possibly a later seq than this change wrote (which would release
    # a reader before the changes committed between the two).
    if change["operationType"] == "insert":
        doc = change.get("fullDocument") or {}
    else:
        doc = change.get("updateDescription", {}).get("updatedFields", {})
    if "seq" not in doc:
        return []
    return [Marked(str(change["documentKey"]["_id"]), int(doc["seq"]))]


def decode(change: dict[str, Any]) -> list[Change]:
    """The records one change stream document stands for."""
    op = change.get("operationType")
    if op in ("drop", "rename", "dropDatabase", "invalidate"):
        return [Lost(f"the database saw {op}")]
    collection = change.get("ns", {}).get("coll")
    try:
        if collection == EVENTS:
            return _event_change(change)
        if collection == USERS:
            return _user_change(change)
        if collection == MARKS:
            return _mark_change(change)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        # A document trackd did not write (a field missing or of another type): what it
        # changes cannot be known, so nothing derived can be trusted.
        return [Lost(f"a change to {collection} could not be read ({exc!r})")]
    return []


class ChangeFeed:
    """One change stream over a database, and the marks that let a reader catch up."""

    def __init__(self, db: AsyncDatabase[Any], owner: str | None = None) -> None:
        self._db = db
        self._marks = db[MARKS]
        self.owner = owner or str(ObjectId())
        self._seq = 0
        self._stream: AsyncChangeStream[Any] | None = None

    async def open(self) -> None:
        """Start watching from now. Raises :class:`FeedUnsupported` on a standalone."""
        if self._stream is not None:
            await self._stream.close()
            self._stream = None
        with watching(FeedUnsupported):
            await _enable_pre_images(self._db)
            self._stream = await self._db.watch(
                [{"$match": {"ns.coll": {"$in": _WATCHED}}}],
                full_document="updateLookup",
                full_document_before_change="whenAvailable",
                max_await_time_ms=CHANGE_WAIT_MS,
                batch_size=1000,
            )

    async def changes(self) -> AsyncIterator[list[Change]]:
        """Each change's records, in commit order, until the stream fails (raises)."""
        assert self._stream is not None, "open() first"
        with translated():
            async for change in self._stream:
                yield decode(change)

    async def mark(self) -> int:
        """Write a mark; its :class:`Marked` arrives after every change committed before."""
        self._seq += 1
        seq = self._seq
        with translated():
            # $max: two marks racing each other can only move the counter forward.
            await self._marks.update_one({"_id": self.owner}, {"$max": {"seq": seq}},
                                         upsert=True)
        return seq

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
        try:
            await self._marks.delete_one({"_id": self.owner})
        except PyMongoError:
            log.debug("could not remove the change mark of %s", self.owner)


async def _enable_pre_images(db: AsyncDatabase[Any]) -> None:
    """Deletions and rewrites of events carry the event's earlier version, so the feed
    can tell whose statistics they change. Best effort: without pre-images such changes
    arrive as :class:`Lost`."""
    try:
        await db.command({"collMod": EVENTS,
                          "changeStreamPreAndPostImages": {"enabled": True}})
    except OperationFailure as exc:
        log.info("events carry no pre-images (%s); deletions will rebuild derived views",
                 exc)
