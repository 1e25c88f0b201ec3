"""One endpoint's delivery, while this process holds its lease.

Live path: the project's events are read from the change stream after the endpoint's
cursor, made into messages (one event each, or up to ``batch_size`` consecutive events),
and sent; different users go concurrently (``concurrency`` at a time), one user's
messages one at a time, in commit order. A message that fails goes to the endpoint's
durable retry queue, and so does every later message of its users while they have one
queued (:mod:`trackd.outbound.retries` sends them, in order, when they are due): other users keep
flowing. The cursor moves past a batch of events only when each of its messages was
answered 2xx or is in the queue (or dead-lettered), and is saved with every lease renewal;
so a crash resends what was in flight since the last renewal and skips nothing.

The queue holds at most ``max_queued`` messages (``TRACKD_WEBHOOK_MAX_QUEUED``): a message
that would go past it is dead-lettered at once (with its record, a WARNING once per episode,
and ``trackd_webhook_queue_full_dead_letters``). The lane counts its queue on every renewal
(a replay adds to it from outside) and keeps the count between renewals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from trackd.outbound import messages, metrics
from trackd.outbound.config import DeliveryConfig
from trackd.outbound.http import Answer, Sender
from trackd.outbound.lane_endings import Disable, LeaseLost, first_disable
from trackd.outbound.schedule import next_delay, now_utc, retry_after_seconds
from trackd.storage.deliveries import DeliveryQueue, Message
from trackd.storage.event_feed import EventStream, HistoryLost
from trackd.storage.streams import EMPTY_ANSWER_GAP_SECONDS
from trackd.storage.webhooks import FAILING, GONE, Endpoint, EndpointRepository

log = logging.getLogger(__name__)

# Attempt records waiting for the next renewal's write; past this, the oldest are
# dropped (and counted in the log line that says so).
MAX_BUFFERED_RECORDS = 10_000
# Consecutive failed attempts after which the live path stops reading new events until
# an attempt succeeds (an endpoint that is down costs no write per event).
PAUSE_AFTER_FAILURES = 20


class Lane:
    def __init__(self, endpoint: Endpoint, endpoints: EndpointRepository, queue: DeliveryQueue,
                 db: Any, sender: Sender, config: DeliveryConfig, holder: str) -> None:
        self.endpoint = endpoint
        self._endpoints = endpoints
        self.queue = queue
        self._db = db
        self._sender = sender
        self.config = config
        self._holder = holder
        # Users with messages in the retry queue, and how many: their next live message
        # queues behind them.
        self.blocked: dict[str, int] = defaultdict(int)
        self.cursor: dict[str, Any] | None = endpoint.cursor
        self._live_oldest: datetime | None = None
        self._queued_oldest: datetime | None = None
        self.failing_since = endpoint.failing_since
        # Attempts failed since the last success: past PAUSE_AFTER_FAILURES, the live path
        # pauses until one succeeds.
        self.failures_in_a_row = 0
        self.last_error = endpoint.last_error
        self._records: list[dict[str, Any]] = []
        self._dropped_records = 0
        self.semaphore = asyncio.Semaphore(config.concurrency)
        # Messages in the endpoint's retry queue (counted at every renewal, kept between).
        self.queued = 0
        self._full_logged = False

    @property
    def lag_seconds(self) -> float:
        oldest = [t for t in (self._live_oldest, self._queued_oldest) if t is not None]
        return max(0.0, (now_utc() - min(oldest)).total_seconds()) if oldest else 0.0

    # --- running ----------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until the lease is lost, the endpoint is disabled, or cancelled."""
        from trackd.outbound.retries import RetryLoop  # the retry half of this lane

        # What is queued now (a replay's messages are counted when the retry loop adopts
        # them). Bound: one counter per user with queued messages.
        pending = await self.queue.pending(self.endpoint.id, limit=1_000_000)
        self.queued = len(pending)
        for message in pending:
            if message.adopted:
                for key in message.keys:
                    self.blocked[key] += 1
        retries = RetryLoop(self)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._renew_loop())
                group.create_task(self._live_loop())
                group.create_task(retries.run())
        except* Disable as caught:
            reason = first_disable(caught).reason
            log.warning("webhook endpoint %s disabled: %s", self.endpoint.id, reason)
            await self.flush_records()
            await self._endpoints.disable_held(self.endpoint.id, self._holder, reason)
        except* LeaseLost:
            log.info("webhook endpoint %s: lease given up (taken over, disabled or deleted)",
                     self.endpoint.id)
            await self.flush_records()  # the attempts made meanwhile were made all the same
        finally:
            await retries.close()

    async def stop(self) -> None:
        """Save progress and let the endpoint go (after the lane's tasks were cancelled)."""
        await self.flush_records()
        await self._endpoints.release(self.endpoint.id, self._holder, self._progress())

    def _progress(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "failing_since": self.failing_since,
                "last_error": self.last_error,
                "lag_from": min((t for t in (self._live_oldest, self._queued_oldest) if t),
                                default=None)}

    async def _renew_loop(self) -> None:
        lease = timedelta(seconds=self.config.lease_seconds)
        while True:
            await asyncio.sleep(self.config.lease_seconds / 4)
            self._queued_oldest = await self.queue.oldest_queued(self.endpoint.id)
            self.queued = await self.queue.queued(self.endpoint.id)
            if self.queued < self.config.max_queued:
                self._full_logged = False
            await self.flush_records()
            endpoint = await self._endpoints.renew(self.endpoint.id, self._holder, now_utc(),
                                                   lease, self._progress())
            if endpoint is None:
                raise LeaseLost()
            self.endpoint = endpoint
            if (self.failing_since is not None and (now_utc() - self.failing_since)
                    .total_seconds() > self.config.disable_after_failing_seconds):
                self.note(None, f"{FAILING}: {self.last_error}", "disabled", 0, 0.0)
                raise Disable(FAILING)

    # --- the live path ----------------------------------------------------------------

    async def _open_stream(self) -> EventStream:
        stream = EventStream(self._db, self.endpoint.project_id, after=self.cursor,
                             names=self.endpoint.event_names or None)
        try:
            await stream.open()
        except HistoryLost:
            # The database no longer holds the changes after the cursor: what the
            # endpoint missed cannot be read in order. Say so, and go on from now
            # (`trackd webhooks replay --since` sends the missed events again).
            log.error("webhook endpoint %s: its position is older than the database's "
                      "change history; delivery goes on from now", self.endpoint.id)
            self.note(None, "history lost: events stored while the endpoint was behind "
                      "were not delivered; replay them with --since", "skipped", 0, 0.0)
            stream = EventStream(self._db, self.endpoint.project_id,
                                 names=self.endpoint.event_names or None)
            await stream.open()
            self.cursor = stream.position
        return stream

    async def _live_loop(self) -> None:
        stream = await self._open_stream()
        asked = 0.0
        try:
            while True:
                # At most one getMore per EMPTY_ANSWER_GAP_SECONDS: SecantusDB answers one
                # as soon as anything is written anywhere, so a lane asking again at once
                # asked once per write; waiting gathers more events per answer instead.
                await asyncio.sleep(max(0.0, asked + EMPTY_ANSWER_GAP_SECONDS
                                        - time.monotonic()))
                asked = time.monotonic()
                limit = self.config.read_batch
                if self.failures_in_a_row >= PAUSE_AFTER_FAILURES:
                    # The receiver fails everything: queueing each new event would only
                    # cost the database a write per event. The stream waits (the events
                    # wait in the database) while the retry loop probes; a success
                    # resumes it. With nothing queued (all dead-lettered) no retry is
                    # left to probe: the next event goes alone, as the probe.
                    self._live_oldest = self._live_oldest or now_utc()
                    if await self.queue.oldest_queued(self.endpoint.id) is not None:
                        continue
                    limit = 1
                batch = await stream.next_batch(limit)
                if batch:
                    docs = [doc for _, doc in batch]
                    self._live_oldest = docs[0]["received_at"]
                    await self._deliver_live(self.make_messages(docs))
                self._live_oldest = None
                position = stream.position
                if position is not None:
                    self.cursor = position
        finally:
            await stream.close()

    def make_messages(self, docs: list[dict[str, Any]]) -> list[Message]:
        return messages.make_messages(self.endpoint.id, self.endpoint.batch_size, docs)

    async def _deliver_live(self, batch: list[Message]) -> None:
        if self.endpoint.batch_size > 1:
            # Batches carry several users: one at a time keeps every user's order.
            await self._deliver_in_order(batch)
            return
        lanes: dict[str, list[Message]] = defaultdict(list)
        for message in batch:
            lanes[message.keys[0]].append(message)
        async with asyncio.TaskGroup() as group:
            for chain in lanes.values():
                group.create_task(self._deliver_in_order(chain, self.semaphore))

    async def _deliver_in_order(self, chain: list[Message],
                                semaphore: asyncio.Semaphore | None = None) -> None:
        for index, message in enumerate(chain):
            if any(self.blocked.get(key) for key in message.keys):
                await self.enqueue(chain[index:])
                return
            if semaphore is not None:
                async with semaphore:
                    answer, outcome, delay = await self.attempt(message)
            else:
                answer, outcome, delay = await self.attempt(message)
            if outcome == "retry":
                assert delay is not None
                message.attempts = 1
                message.next_at = now_utc() + timedelta(seconds=delay)
                message.last_error = answer.error
                await self.enqueue(chain[index:])
                return
            if outcome == "dead_letter":
                await self.queue.dead_letter(self.endpoint.id, message, answer.error, now_utc())

    async def enqueue(self, chain: list[Message]) -> None:
        """Queue ``chain`` (in order) behind what its users already have queued; what would
        take the queue past ``max_queued`` is dead-lettered instead."""
        room = max(0, self.config.max_queued - self.queued)
        chain, overflow = chain[:room], chain[room:]
        if chain:
            for message in chain:
                for key in message.keys:  # counted first: no later message may slip past
                    self.blocked[key] += 1
                if message.next_at is None:
                    message.next_at = now_utc()
            first = await self._endpoints.take_seq(self.endpoint.id, len(chain))
            for offset, message in enumerate(chain):
                message.seq = first + offset
            # A message queued already (made again after a crash) was counted when it was
            # queued: only what this call added stays counted.
            already = await self.queue.queued_already(self.endpoint.id, chain)
            for message in already:
                self.unblock(message)
            self.queued += len(chain) - len(already)
        for message in overflow:
            await self._queue_full(message)

    async def _queue_full(self, message: Message) -> None:
        """Dead-letter ``message`` at once: the retry queue holds ``max_queued``."""
        error = (f"retry queue full ({self.config.max_queued} messages, "
                 "TRACKD_WEBHOOK_MAX_QUEUED): dead-lettered without a retry")
        if not self._full_logged:
            self._full_logged = True
            log.warning("webhook endpoint %s: its retry queue holds %d messages "
                        "(TRACKD_WEBHOOK_MAX_QUEUED); messages that would queue are dead-lettered "
                        "at once until it drains", self.endpoint.id, self.queued)
        metrics.QUEUE_FULL.inc()
        metrics.DEAD_LETTERS.inc()
        self.note(message, error, "dead_letter", 0, 0.0)
        await self.queue.dead_letter(self.endpoint.id, message, error, now_utc())

    def unblock(self, message: Message) -> None:
        for key in message.keys:
            self.blocked[key] -= 1
            if self.blocked[key] <= 0:
                del self.blocked[key]

    # --- one attempt ------------------------------------------------------------------

    async def attempt(self, message: Message) -> tuple[Answer, str, float | None]:
        """Send ``message`` once: (answer, outcome, delay before the next try if any).
        Raises :class:`Disable` on 410 Gone."""
        stamp = int(time.time())
        signature = messages.signature(self.endpoint.signing_secrets(now_utc()),
                                       message.msg_id, stamp, message.body)
        headers = {"content-type": "application/json", "webhook-id": message.msg_id,
                   "webhook-timestamp": str(stamp), "webhook-signature": signature}
        answer = await self._sender.post(self.endpoint.url, headers, message.body)
        metrics.ATTEMPT_LATENCY.observe(answer.latency)
        if answer.delivered:
            self.failures_in_a_row = 0
            self.failing_since = None
            self.last_error = ""
            metrics.EVENTS_DELIVERED.inc(message.events)
            self.note(message, "", "delivered", answer.status, answer.latency)
            return answer, "delivered", None
        self.last_error = answer.error
        self.failures_in_a_row += 1
        if self.failing_since is None:
            self.failing_since = now_utc()
        if answer.status == 410:
            self.note(message, answer.error, "disabled", answer.status, answer.latency)
            raise Disable(GONE)
        retry_after = retry_after_seconds(answer.retry_after, now_utc()) \
            if answer.status in (429, 503) else None
        delay = next_delay(self.config.retry_schedule, message.attempts + 1,
                           self.config.jitter, retry_after)
        outcome = "retry" if delay is not None else "dead_letter"
        if outcome == "dead_letter":
            metrics.DEAD_LETTERS.inc()
        self.note(message, answer.error, outcome, answer.status, answer.latency)
        return answer, outcome, delay

    def note(self, message: Message | None, error: str, outcome: str, status: int,
             latency: float) -> None:
        """An attempt's record (written with the next renewal) and its metric."""
        metrics.ATTEMPTS.labels(outcome).inc()
        if len(self._records) >= MAX_BUFFERED_RECORDS:
            self._records.pop(0)
            self._dropped_records += 1
        self._records.append({
            "endpoint_id": self.endpoint.id, "at": now_utc(),
            "msg_id": message.msg_id if message else "", "status": status, "error": error,
            "latency": round(latency, 6), "outcome": outcome,
            "events": message.events if message else 0})
        log.debug("webhook attempt: endpoint %s message %s: %s (%s, %.0f ms)",
                  self.endpoint.id, message.msg_id if message else "-", outcome,
                  status or error or "no answer", latency * 1000)

    async def flush_records(self) -> None:
        records, self._records = self._records, []
        if self._dropped_records:
            log.warning("webhook endpoint %s: %d attempt records were dropped (the database "
                        "was too slow to take them)", self.endpoint.id, self._dropped_records)
            self._dropped_records = 0
        await self.queue.record_attempts(records)
