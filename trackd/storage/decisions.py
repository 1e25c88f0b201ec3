"""The console's decisions and per-minute counts (collections ``console_decisions`` and
``console_counts``).

A decision is a plain document the server made (what a request that stored nothing was
decided as, never its body or key); :class:`DecisionLog` writes them in batches and counts
in bulk, reads a project's recent ones, and follows new ones with a change stream
(:class:`DecisionStream`). Both collections are bounded in age by TTL indexes
(:data:`trackd.storage.indexes.DECISIONS_TTL_SECONDS`, ``CONSOLE_COUNTS_TTL_SECONDS``); their
size is bounded by what the server records per flush (trackd/server/decisions.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.write_concern import WriteConcern

from trackd.storage.errors import StorageError, translated
from trackd.storage.event_feed import StreamsUnsupported
from trackd.storage.indexes import CONSOLE_COUNTS, DECISIONS
from trackd.storage.streams import CHANGE_WAIT_MS, watching

# (project, minute, kind, key) -> how many.
CountKey = tuple[str, datetime, str, str]
# What the console reads is a view, not a record of ingest: acknowledged by the primary,
# not journaled, so recording it costs the database less.
_LIGHT = WriteConcern(w=1, j=False)


class DecisionLog:
    """Writes and reads decisions and counts."""

    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._db = db
        self._decisions = db.get_collection(DECISIONS, write_concern=_LIGHT)
        self._counts = db.get_collection(CONSOLE_COUNTS, write_concern=_LIGHT)

    async def record(self, decisions: Sequence[dict[str, Any]],
                     counts: Mapping[CountKey, int]) -> None:
        """Add ``counts``, then insert ``decisions`` (each with ``project_id`` and ``at``):
        a reader who sees a decision finds it counted."""
        with translated():
            if counts:
                await self._counts.bulk_write([
                    UpdateOne({"project_id": project, "minute": minute, "kind": kind,
                               "key": key}, {"$inc": {"count": count}}, upsert=True)
                    for (project, minute, kind, key), count in counts.items()],
                    ordered=False)
            if decisions:
                await self._decisions.insert_many([dict(doc) for doc in decisions],
                                                  ordered=False)

    async def since(self, project_id: str, at: datetime, limit: int) -> list[dict[str, Any]]:
        """The project's decisions recorded at or after ``at``, oldest first (at most
        ``limit``, the newest ones)."""
        with translated():
            cursor = self._decisions.find({"project_id": project_id, "at": {"$gte": at}}
                                          ).sort([("at", -1), ("_id", -1)]).limit(limit)
            docs = [_plain(doc) async for doc in cursor]
        docs.reverse()
        return docs

    async def counts(self, project_id: str, since: datetime) -> list[dict[str, Any]]:
        """The project's counters of the minutes from ``since`` on."""
        with translated():
            cursor = self._counts.find({"project_id": project_id, "minute": {"$gte": since}},
                                       {"_id": 0, "minute": 1, "kind": 1, "key": 1,
                                        "count": 1})
            return [doc async for doc in cursor]

    def stream(self, project_id: str, *, wait_ms: int = CHANGE_WAIT_MS) -> DecisionStream:
        return DecisionStream(self._db, project_id, wait_ms)


def _plain(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A decision with its ``_id`` as the string ``id``."""
    out = dict(doc)
    out["id"] = str(out.pop("_id", ""))
    return out


class DecisionStream:
    """The decisions of one project inserted from now on (by any instance)."""

    def __init__(self, db: AsyncDatabase[Any], project_id: str, wait_ms: int) -> None:
        self._collection = db[DECISIONS]
        self._pipeline = [{"$match": {"operationType": "insert",
                                      "fullDocument.project_id": project_id}}]
        self._wait_ms = wait_ms
        self._stream: AsyncChangeStream[Any] | None = None

    async def open(self) -> None:
        with watching(StreamsUnsupported):
            self._stream = await self._collection.watch(
                self._pipeline, max_await_time_ms=self._wait_ms, batch_size=1000)

    async def next_batch(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` decisions: those available now, else the first to arrive within
        the stream's wait (maybe none)."""
        if self._stream is None:
            raise StorageError("the decision stream is not open")
        out: list[dict[str, Any]] = []
        with translated():
            while len(out) < limit:
                change = await self._stream.try_next()
                if change is None:
                    break
                out.append(_plain(change["fullDocument"]))
                if not self._stream._cursor._data:  # as trackd.storage.event_feed: no extra wait
                    break
        return out

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
            self._stream = None
