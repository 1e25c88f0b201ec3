"""Webhook messages that wait, that were given up on, and every attempt.

- the retry queue (:class:`DeliveryQueue`): per endpoint, the messages that failed and
  are tried again at ``next_at``, and the messages of the same users behind them, in
  order (``seq``); a message's ``keys`` are the users (``user_id``, else
  ``anonymous_id``) whose events it carries. ``adopted`` is false for a message queued
  by someone else than the endpoint's deliverer (a replay), until the deliverer counts it.
- dead letters: messages that failed every retry, kept 7 days (TTL) and replayable;
- attempts: one record per try, kept 7 days (TTL), newest first for the attempts log;
  written in buckets (a document per endpoint per write, up to 1000 records).

A message keeps its ``msg_id`` and its ``body`` (bytes) wherever it goes: a receiver sees
the same webhook-id and the same bytes on every attempt, and when its dead letter is
replayed (a message made again from its events: :mod:`trackd.outbound.messages`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from trackd.storage.errors import DRIVER_ERRORS, translate
from trackd.storage.events import DUPLICATE_KEY
from trackd.storage.indexes import WEBHOOK_ATTEMPTS, WEBHOOK_DEAD_LETTERS, WEBHOOK_QUEUE

BUCKET_ATTEMPTS = 1000


@dataclass
class Message:
    """One webhook message: what is sent, to whom it matters, and how it went so far."""

    msg_id: str
    body: bytes
    keys: list[str]
    events: int
    oldest_at: datetime  # the receive time of its first event (for the lag)
    seq: int = 0
    attempts: int = 0
    next_at: datetime | None = None
    last_error: str = ""
    adopted: bool = True


def _doc(endpoint_id: str, m: Message) -> dict[str, Any]:
    return {"endpoint_id": endpoint_id, "msg_id": m.msg_id, "body": m.body, "keys": m.keys,
            "events": m.events, "oldest_at": m.oldest_at, "seq": m.seq,
            "attempts": m.attempts, "next_at": m.next_at, "last_error": m.last_error,
            "adopted": m.adopted}


def _message(doc: dict[str, Any]) -> Message:
    return Message(msg_id=doc["msg_id"], body=bytes(doc.get("body", b"")), keys=list(doc["keys"]),
                   events=int(doc["events"]), oldest_at=doc["oldest_at"], seq=int(doc["seq"]),
                   attempts=int(doc.get("attempts", 0)), next_at=doc.get("next_at"),
                   last_error=doc.get("last_error", ""), adopted=bool(doc.get("adopted", True)))


async def _insert(collection: Any, docs: list[dict[str, Any]]) -> set[int]:
    """Insert, a message already there (same endpoint and msg_id) counting as done;
    the indexes in ``docs`` of those that were already there."""
    if not docs:
        return set()
    try:
        await collection.insert_many(docs, ordered=False)
        return set()
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise translate(exc) from exc
        return {int(e["index"]) for e in errors}
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc


class DeliveryQueue:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._queue = db[WEBHOOK_QUEUE]
        self._dead = db[WEBHOOK_DEAD_LETTERS]
        self._attempts = db[WEBHOOK_ATTEMPTS]

    async def enqueue(self, endpoint_id: str, messages: list[Message]) -> int:
        """Queue ``messages`` (their ``seq`` set); returns how many were new."""
        return len(messages) - len(await self.queued_already(endpoint_id, messages))

    async def queued_already(self, endpoint_id: str, messages: list[Message]) -> list[Message]:
        """Queue ``messages`` (their ``seq`` set); returns those that were queued already
        (same msg_id: made again after a crash), which stay as they were, not added."""
        there = await _insert(self._queue, [_doc(endpoint_id, m) for m in messages])
        return [m for index, m in enumerate(messages) if index in there]

    async def heads(self, endpoint_id: str) -> list[Message]:
        """Each user's first queued message, in order, without bodies: a message is a
        head when it is the first of every user it carries. One aggregation finds the
        smallest ``seq`` per user over the whole queue (no window: a user with many
        queued messages cannot hide another user's first)."""
        try:
            firsts = {row["_id"]: int(row["seq"]) async for row in await self._queue.aggregate([
                {"$match": {"endpoint_id": endpoint_id}},
                {"$project": {"_id": 0, "keys": 1, "seq": 1}},
                {"$unwind": "$keys"},
                {"$group": {"_id": "$keys", "seq": {"$min": "$seq"}}}])}
            docs = await self._queue.find(
                {"endpoint_id": endpoint_id, "seq": {"$in": sorted(set(firsts.values()))}},
                {"body": 0}).sort("seq", ASCENDING).to_list(None)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return [m for m in map(_message, docs) if all(firsts.get(k) == m.seq for k in m.keys)]

    async def unadopted(self, endpoint_id: str, limit: int) -> list[Message]:
        """Up to ``limit`` messages a replay queued that the deliverer has not counted
        yet, in order, without bodies."""
        try:
            docs = await self._queue.find({"endpoint_id": endpoint_id, "adopted": False},
                                          {"body": 0}).sort("seq", ASCENDING) \
                .limit(limit).to_list(None)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return [_message(doc) for doc in docs]

    async def pending(self, endpoint_id: str, limit: int) -> list[Message]:
        """The endpoint's queued messages in order, at most ``limit``, without their
        bodies (:meth:`body` reads one when it is sent)."""
        try:
            docs = await self._queue.find({"endpoint_id": endpoint_id}, {"body": 0}) \
                .sort("seq", ASCENDING).limit(limit).to_list(None)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return [_message(doc) for doc in docs]

    async def body(self, endpoint_id: str, msg_id: str) -> bytes | None:
        try:
            doc = await self._queue.find_one({"endpoint_id": endpoint_id, "msg_id": msg_id},
                                             {"body": 1})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return None if doc is None else bytes(doc["body"])

    async def adopt(self, endpoint_id: str, msg_ids: list[str]) -> None:
        try:
            await self._queue.update_many({"endpoint_id": endpoint_id, "msg_id": {"$in": msg_ids}},
                                          {"$set": {"adopted": True}})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def reschedule(self, endpoint_id: str, msg_id: str, attempts: int,
                         next_at: datetime, error: str) -> None:
        try:
            await self._queue.update_one(
                {"endpoint_id": endpoint_id, "msg_id": msg_id},
                {"$set": {"attempts": attempts, "next_at": next_at, "last_error": error}})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def remove(self, endpoint_id: str, msg_id: str) -> None:
        try:
            await self._queue.delete_one({"endpoint_id": endpoint_id, "msg_id": msg_id})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def dead_letter(self, endpoint_id: str, message: Message, error: str,
                          now: datetime) -> None:
        """Move ``message`` from the queue to the dead letters (kept 7 days)."""
        doc = _doc(endpoint_id, message)
        doc.update(last_error=error, dead_at=now)
        await _insert(self._dead, [doc])
        await self.remove(endpoint_id, message.msg_id)

    async def dead_letters(self, endpoint_id: str) -> list[Message]:
        try:
            docs = await self._dead.find({"endpoint_id": endpoint_id}) \
                .sort([("dead_at", ASCENDING), ("seq", ASCENDING)]).to_list(None)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return [_message(doc) for doc in docs]

    async def forget_dead(self, endpoint_id: str, msg_ids: list[str]) -> None:
        try:
            await self._dead.delete_many({"endpoint_id": endpoint_id, "msg_id": {"$in": msg_ids}})
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def counts(self, endpoint_ids: list[str]) -> dict[str, tuple[int, int]]:
        """Per endpoint: (queued, dead letters)."""
        out = dict.fromkeys(endpoint_ids, (0, 0))
        try:
            for index, collection in enumerate((self._queue, self._dead)):
                async for row in await collection.aggregate([
                        {"$match": {"endpoint_id": {"$in": endpoint_ids}}},
                        {"$group": {"_id": "$endpoint_id", "n": {"$sum": 1}}}]):
                    pair = list(out[row["_id"]])
                    pair[index] = int(row["n"])
                    out[row["_id"]] = (pair[0], pair[1])
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return out

    async def queued(self, endpoint_id: str) -> int:
        """How many messages the endpoint's retry queue holds."""
        try:
            return int(await self._queue.count_documents({"endpoint_id": endpoint_id}))
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def oldest_queued(self, endpoint_id: str) -> datetime | None:
        try:
            doc = await self._queue.find_one({"endpoint_id": endpoint_id},
                                             sort=[("oldest_at", ASCENDING)])
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return None if doc is None else doc["oldest_at"]

    # --- attempts ---------------------------------------------------------------------

    async def record_attempts(self, records: list[dict[str, Any]]) -> None:
        """Each record: endpoint_id, at, msg_id, status, error, latency, outcome, events.

        Stored as buckets: one document per endpoint per write, holding up to
        :data:`BUCKET_ATTEMPTS` records (an insert per delivery would cost the database
        more than the delivery; measured with bench/webhooks.py)."""
        by_endpoint: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            by_endpoint.setdefault(record["endpoint_id"], []).append(
                {k: v for k, v in record.items() if k != "endpoint_id"})
        docs = []
        for endpoint_id, entries in by_endpoint.items():
            for first in range(0, len(entries), BUCKET_ATTEMPTS):
                chunk = entries[first:first + BUCKET_ATTEMPTS]
                docs.append({"endpoint_id": endpoint_id, "at": chunk[-1]["at"],
                             "attempts": chunk})
        if not docs:
            return
        try:
            await self._attempts.insert_many(docs, ordered=False)
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def attempts(self, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
        """The endpoint's ``limit`` most recent attempt records, newest first."""
        out: list[dict[str, Any]] = []
        try:
            cursor = self._attempts.find({"endpoint_id": endpoint_id}, {"_id": 0}) \
                .sort([("at", DESCENDING), ("_id", DESCENDING)])
            async for bucket in cursor:
                out.extend(reversed(bucket["attempts"]))
                if len(out) >= limit:
                    break
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc
        return out[:limit]
