"""One project's stored events in commit order, from a position, a time or now, then live.

A change stream of the events collection's inserts (``EventStream``): each event comes
with its change's resume token (``position``), which resumes the stream just after it on
any instance and any connection, for as long as the database keeps its change history
(the oplog: at least 25 h on the embedded database, :data:`trackd.storage.embedded.OPLOG_ARGS`;
on a replica set, its oplog size or ``oplogMinRetentionHours``). A position the history
no longer holds is :class:`HistoryLost`; one the database cannot read is :class:`BadPosition`.

:func:`received_between` reads stored events by receive time instead (the events
collection's ``project_received_at`` index), for replays older than the history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bson.timestamp import Timestamp
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from trackd.storage.errors import DRIVER_ERRORS, StorageError, StorageUnavailable, translate
from trackd.storage.indexes import EVENTS
from trackd.storage.streams import CHANGE_WAIT_MS, NO_CHANGE_STREAMS

# ChangeStreamHistoryLost; and the code mongod answers a resume token of a point older
# than its oldest oplog entry with before it can say so (ChangeStreamFatalError).
_HISTORY_LOST = frozenset({286, 280})
# InvalidResumeToken, BadValue, FailedToParse, TypeMismatch, Unauthorized (SecantusDB's
# answer to a token of another namespace).
_BAD_TOKEN = frozenset({260, 2, 9, 14, 13})


class HistoryLost(StorageError):
    """The position is older than the change history the database keeps."""


class BadPosition(StorageError):
    """The position is not one this database's change streams can resume from."""


class StreamsUnsupported(StorageUnavailable):
    """The database offers no change streams (a standalone server)."""


def _failure(exc: Exception) -> StorageError:
    if isinstance(exc, OperationFailure):
        if exc.code in _HISTORY_LOST:
            return HistoryLost(str(exc))
        if exc.code in _BAD_TOKEN:
            return BadPosition(str(exc))
        if exc.code in NO_CHANGE_STREAMS:
            return StreamsUnsupported(str(exc))
    return translate(exc)


class EventStream:
    """A project's inserted events, after ``after`` (a position), from ``at`` (a time),
    or from now; only ``names`` when given."""

    def __init__(self, db: AsyncDatabase[Any], project_id: str, *,
                 after: dict[str, Any] | None = None, at: datetime | None = None,
                 names: list[str] | None = None, wait_ms: int = CHANGE_WAIT_MS) -> None:
        self._events = db[EVENTS]
        match: dict[str, Any] = {"operationType": "insert", "fullDocument.project_id": project_id}
        if names:
            match["fullDocument.name"] = {"$in": sorted(set(names))}
        self._pipeline = [{"$match": match}]
        self._after = after
        self._at = at
        self._wait_ms = wait_ms
        self._stream: AsyncChangeStream[Any] | None = None

    async def open(self) -> None:
        options: dict[str, Any] = {}
        if self._after is not None:
            options["resume_after"] = self._after
        elif self._at is not None:
            options["start_at_operation_time"] = Timestamp(max(int(self._at.timestamp()), 1), 0)
        try:
            self._stream = await self._events.watch(
                self._pipeline, max_await_time_ms=self._wait_ms, batch_size=1000, **options)
        except DRIVER_ERRORS as exc:
            raise _failure(exc) from exc

    @property
    def position(self) -> dict[str, Any] | None:
        """Where the stream is: resuming here skips nothing it has not returned."""
        token = None if self._stream is None else self._stream.resume_token
        return None if token is None else dict(token)

    async def next_batch(self, limit: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Up to ``limit`` (position, event) pairs in commit order: those available now,
        else the first to arrive within the stream's wait (maybe none)."""
        assert self._stream is not None, "open() first"
        out: list[tuple[dict[str, Any], dict[str, Any]]] = []
        try:
            while len(out) < limit:
                change = await self._stream.try_next()
                if change is None:
                    break
                out.append((change["_id"], change["fullDocument"]))
                # Stop at the end of what the last answer brought: one more try_next
                # would ask the server again and hold this batch for the stream's wait
                # (PyMongo exposes no public "buffered" count; its cursor's deque is it).
                if not self._stream._cursor._data:
                    break
        except DRIVER_ERRORS as exc:
            raise _failure(exc) from exc
        return out

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
            self._stream = None


async def current_position(db: AsyncDatabase[Any]) -> dict[str, Any] | None:
    """A position just after everything committed so far (None: no change streams)."""
    stream = EventStream(db, "", wait_ms=1)
    try:
        await stream.open()
    except StreamsUnsupported:
        return None
    try:
        return stream.position
    finally:
        await stream.close()


async def received_between(db: AsyncDatabase[Any], project_id: str, since: datetime,
                           until: datetime | None, names: list[str] | None,
                           batch: int = 500) -> AsyncIterator[list[dict[str, Any]]]:
    """The project's stored events received in [since, until), oldest first, in batches."""
    query: dict[str, Any] = {"project_id": project_id,
                             "received_at": {"$gte": since, **({"$lt": until} if until else {})}}
    if names:
        query["name"] = {"$in": sorted(set(names))}
    try:
        cursor = db[EVENTS].find(query).sort([("received_at", 1), ("_id", 1)]).batch_size(batch)
        chunk: list[dict[str, Any]] = []
        async for doc in cursor:
            chunk.append(doc)
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc
