"""The queue both clients share: items waiting, batches in flight, and the counters.

Not thread-safe on its own: :class:`trackd_client.Client` calls it under its lock,
:class:`trackd_client.AsyncClient` from its event loop only. Every item gets a sequence
number when queued; ``flush()`` waits until every item numbered up to the last one queued
before it was called has been sent or has failed.
"""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from google.protobuf.message import Message

from trackd.v1 import tracking_pb2, users_pb2
from trackd_client import limits

Kind = Literal["events", "users"]
RPC_NAMES: dict[Kind, str] = {"events": "BatchTrack", "users": "BatchUpsertUsers"}


@dataclass(frozen=True)
class Stats:
    """Counters since the client was made; items are events and user upserts.

    ``queued`` items were accepted by ``track()``/``identify()``; of them ``sent`` are
    stored (a server-side duplicate counts as sent: it is stored once), ``failed`` never
    will be (refused by the server, or given up at ``close()``), and ``pending`` are
    queued or in flight. ``dropped`` items were refused by a full queue under the "drop"
    policy (never queued). ``retried`` counts requests sent again after a retryable
    failure.
    """

    queued: int
    sent: int
    retried: int
    dropped: int
    failed: int
    pending: int


@dataclass
class Batch:
    """One request's worth of items, fixed once taken: every retry sends the same."""

    kind: Kind
    messages: list[Message]
    first_seq: int
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    _request: Message | None = None

    @property
    def rpc(self) -> str:
        return RPC_NAMES[self.kind]

    def ids(self) -> tuple[str, ...]:
        if self.kind == "events":
            return tuple(m.event_id for m in self.messages)  # type: ignore[attr-defined]
        return tuple(m.external_id for m in self.messages)  # type: ignore[attr-defined]

    def request(self) -> Message:
        """The request, built once: a retry must be the same request, byte for byte, or
        the server refuses its idempotency key as reused."""
        if self._request is None:
            if self.kind == "events":
                self._request = tracking_pb2.BatchTrackRequest(
                    events=self.messages,  # type: ignore[arg-type]
                    idempotency_key=self.idempotency_key)
            else:
                self._request = users_pb2.BatchUpsertUsersRequest(
                    users=self.messages,  # type: ignore[arg-type]
                    idempotency_key=self.idempotency_key)
        return self._request


@dataclass
class _Queue:
    limit: int                     # items per batch
    items: deque[tuple[int, float, Message, int]] = field(default_factory=deque)
    size: int = 0                  # serialized bytes queued


class Buffer:
    """Queued items of both kinds, bounded together by ``capacity``."""

    def __init__(self, capacity: int, batch_size: int, flush_interval: float,
                 max_batch_bytes: int) -> None:
        self.capacity = capacity
        self.flush_interval = flush_interval
        self.max_batch_bytes = max_batch_bytes
        self._queues: dict[Kind, _Queue] = {
            "events": _Queue(min(batch_size, limits.MAX_BATCH_EVENTS)),
            "users": _Queue(limits.MAX_BATCH_USERS),
        }
        self._seq = itertools.count(1)
        self.last_seq = 0
        self.in_flight: dict[int, Batch] = {}  # id(batch) -> batch
        self.queued = self.sent = self.retried = self.dropped = self.failed = 0

    def __len__(self) -> int:
        return sum(len(q.items) for q in self._queues.values())

    def full(self) -> bool:
        return len(self) >= self.capacity

    def add(self, kind: Kind, message: Message, now: float) -> bool:
        """Queue ``message``; True when a sender should be woken (the queue was empty,
        or a batch is full)."""
        queue = self._queues[kind]
        self.last_seq = next(self._seq)
        size = message.ByteSize()
        queue.items.append((self.last_seq, now, message, size))
        queue.size += size
        self.queued += 1
        return len(queue.items) == 1 or len(queue.items) >= queue.limit \
            or queue.size >= self.max_batch_bytes

    def _users_in_flight(self) -> bool:
        return any(batch.kind == "users" for batch in self.in_flight.values())

    def due_at(self) -> float | None:
        """When the oldest item that may be sent is due (monotonic); None when there is
        none (the queue is empty, or events wait for user upserts in flight)."""
        if self._users_in_flight():
            return None  # nothing is taken until it is done, which wakes the senders
        times = [q.items[0][1] for q in self._queues.values() if q.items]
        return min(times) + self.flush_interval if times else None

    def _due(self, queue: _Queue, now: float, force: bool) -> bool:
        return bool(queue.items) and (
            force or len(queue.items) >= queue.limit or queue.size >= self.max_batch_bytes
            or queue.items[0][1] + self.flush_interval <= now)

    def take(self, now: float, force: bool) -> Batch | None:
        """The next batch to send: a full one, one whose oldest item has waited
        ``flush_interval``, or (``force``: flushing) whatever is queued.

        Nothing overtakes a user upsert: while a batch of them is in flight nothing else
        is taken, and an events batch due behind queued upserts sends the upserts first
        and stops at the first event queued after them. So ``identify()`` then
        ``track()`` reach the server in that order (an anonymous id is linked before the
        events that use it), and two upserts of one user are applied in order, as they
        would be from sequential calls. Events batches may overtake each other.
        """
        if self._users_in_flight():
            return None
        users, events = self._queues["users"], self._queues["events"]
        events_due = self._due(events, now, force)
        if self._due(users, now, force) or (
                events_due and users.items and users.items[0][0] < events.items[0][0]):
            return self._take("users", users, None)
        if events_due:
            return self._take("events", events, users.items[0][0] if users.items else None)
        return None

    def _take(self, kind: Kind, queue: _Queue, before: int | None) -> Batch:
        """A batch from the head of ``queue``, of items numbered below ``before``."""
        messages: list[Message] = []
        size = 0
        first = queue.items[0][0]
        while queue.items and len(messages) < queue.limit:
            seq, _, message, item_size = queue.items[0]
            if (messages and size + item_size > self.max_batch_bytes) or \
                    (before is not None and seq > before):
                break
            queue.items.popleft()
            messages.append(message)
            size += item_size
        queue.size -= size
        batch = Batch(kind, messages, first)
        self.in_flight[id(batch)] = batch
        return batch

    def finish(self, batch: Batch, sent: int, failed: int) -> None:
        del self.in_flight[id(batch)]
        self.sent += sent
        self.failed += failed

    def fail_queued(self, kinds: tuple[Kind, ...] = ("events", "users")) -> list[Batch]:
        """Empty the queues of ``kinds``, counting their items failed; what they held."""
        lost = []
        for kind in kinds:
            queue = self._queues[kind]
            if queue.items:
                lost.append(Batch(kind, [item[2] for item in queue.items], queue.items[0][0]))
                self.failed += len(queue.items)
                queue.items.clear()
                queue.size = 0
        return lost

    def done_through(self, seq: int) -> bool:
        """Whether every item numbered ``seq`` or lower has been sent or has failed."""
        oldest = [q.items[0][0] for q in self._queues.values() if q.items]
        oldest += [batch.first_seq for batch in self.in_flight.values()]
        return not oldest or min(oldest) > seq

    def stats(self) -> Stats:
        return Stats(queued=self.queued, sent=self.sent, retried=self.retried,
                     dropped=self.dropped, failed=self.failed,
                     pending=self.queued - self.sent - self.failed)
