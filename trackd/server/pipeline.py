"""The group-commit write pipeline: many requests' events, one durable insert_many.

Requests do not write on their own. :meth:`WritePipeline.write` queues a request's
events and waits; a single flusher takes what is queued (up to ``max_batch_events``)
into one unordered ``insert_many`` with the durable write concern. Batching adapts to
load by itself: when no flush is running, whatever is queued is flushed at once (a lone
event on an idle server pays no wait); while one runs, new events accumulate and the next
flush carries all of them. A further flush runs in parallel (up to ``max_in_flight``,
because the database absorbs concurrent writers well) only once ``parallel_batch_events``
are waiting or the oldest has waited ``linger_seconds``, so a long flush never holds a
small one back for long.

A request's future resolves only once every one of its events is durable (or was already
stored: a duplicate event id is success). A failed flush fails exactly the requests it
carried. The queue is bounded, and after the database fails a flush the pipeline fails
new writes fast for ``outage_backoff_seconds`` instead of queueing them behind a dead
connection; the next flush after that probes the database again.

There is no flusher task: the decision "flush now, or wait" is taken at most once per
event-loop iteration (so the requests of one iteration share a flush), again when a flush
finishes, and when the linger timer of the oldest waiting event fires. Measured (64
writers trickling in, a 4 ms fake insert): the pipeline's own CPU per write went from
~15 µs with a flusher task woken by every write to ~9 µs.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from trackd.server import metrics
from trackd.storage import StorageError, StorageUnavailable
from trackd.storage.events import EventRepository

log = logging.getLogger(__name__)


class PipelineOverloaded(Exception):
    """The queue is full; the caller should retry later."""


class PipelineClosed(Exception):
    """The pipeline is shutting down and takes no more writes."""


@dataclass(frozen=True)
class PipelineConfig:
    max_batch_events: int = 1000
    max_in_flight: int = 4
    parallel_batch_events: int = 64
    linger_seconds: float = 0.02
    max_queued_events: int = 100_000
    outage_backoff_seconds: float = 0.5


@dataclass
class PipelineStats:
    """Counters for tests, benchmarks and metrics."""

    flushes: int = 0
    events_written: int = 0
    failed_flushes: int = 0


@dataclass
class _Pending:
    docs: list[dict[str, Any]]
    future: asyncio.Future[list[bool]]
    queued_at: float


@dataclass
class _Flush:
    items: list[_Pending] = field(default_factory=list)
    size: int = 0


class WritePipeline:
    def __init__(self, events: EventRepository, config: PipelineConfig | None = None) -> None:
        self._events = events
        self.config = config or PipelineConfig()
        self.stats = PipelineStats()
        self._pending: deque[_Pending] = deque()
        self._pending_events = 0
        self._queued_events = 0  # pending + in flight: the memory bound
        self._in_flight: set[asyncio.Task[None]] = set()
        self._down_until = 0.0
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._check_soon = False  # a _check is scheduled for this loop iteration
        self._timer: asyncio.TimerHandle | None = None

    @property
    def queued_events(self) -> int:
        """Events waiting or being written (what ``max_queued_events`` bounds)."""
        return self._queued_events

    def start(self) -> None:
        """Bind to the running event loop (writes bind to it by themselves too)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    async def write(self, docs: list[dict[str, Any]]) -> list[bool]:
        """Store ``docs`` durably; per doc, True if newly stored, False if a duplicate.

        Raises :class:`PipelineOverloaded`, :class:`PipelineClosed`,
        :class:`storage.StorageUnavailable` (nothing acknowledged; safe to retry) or
        :class:`storage.StorageError`.
        """
        if self._closed:
            raise PipelineClosed("the server is shutting down")
        if time.monotonic() < self._down_until:
            raise StorageUnavailable("the database is unavailable")
        if self._queued_events + len(docs) > self.config.max_queued_events:
            raise PipelineOverloaded(
                f"write queue is full ({self.config.max_queued_events} events)")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        self._pending.append(_Pending(docs, future, loop.time()))
        self._pending_events += len(docs)
        self._queued_events += len(docs)
        metrics.WRITE_QUEUE.inc(len(docs))
        if not self._check_soon:
            self._check_soon = True
            loop.call_soon(self._check)
        # If the caller goes away (deadline, disconnect) its future is cancelled, but its
        # events stay queued and are still written: their ids make the client's retry
        # safe. Nobody reads the outcome then.
        future.add_done_callback(_consume_outcome)
        return await future

    async def close(self) -> None:
        """Stop taking writes, flush everything queued, and wait for it to be durable."""
        self._closed = True
        self._check()
        while self._in_flight:
            # A finishing flush starts the next one (its done-callback runs first).
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        """Start every flush the state allows; else wait for the oldest event's linger."""
        self._check_soon = False
        loop = self._loop
        assert loop is not None
        config = self.config
        while self._pending:
            in_flight = len(self._in_flight)
            if in_flight >= config.max_in_flight:
                return  # a finishing flush checks again
            if not (in_flight == 0 or self._closed
                    or self._pending_events >= config.parallel_batch_events
                    or loop.time() - self._pending[0].queued_at >= config.linger_seconds):
                if self._timer is None:
                    self._timer = loop.call_at(
                        self._pending[0].queued_at + config.linger_seconds, self._lingered)
                return
            # A flush is no one request's: it runs outside the context of the call that
            # scheduled this check (whose request id its log lines would carry).
            task = loop.create_task(self._flush(self._take()), context=contextvars.Context())
            self._in_flight.add(task)
            task.add_done_callback(self._flushed)

    def _lingered(self) -> None:
        self._timer = None
        self._check()

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._check()

    def _take(self) -> _Flush:
        flush = _Flush()
        limit = self.config.max_batch_events
        while self._pending and (
            not flush.items or flush.size + len(self._pending[0].docs) <= limit
        ):
            item = self._pending.popleft()
            flush.items.append(item)
            flush.size += len(item.docs)
        self._pending_events -= flush.size
        return flush

    async def _flush(self, flush: _Flush) -> None:
        try:
            docs = [doc for item in flush.items for doc in item.docs]
            metrics.FLUSH_SIZE.observe(len(docs))
            started = time.perf_counter()
            try:
                outcome = await self._events.insert_many(docs)
            except Exception as exc:
                metrics.FLUSH_LATENCY.observe(time.perf_counter() - started)
                # Anything else (a document the driver cannot encode, a bug) must fail
                # these requests too, never leave them waiting for their deadline.
                if not isinstance(exc, StorageError):
                    exc = StorageError(f"the events could not be written: {exc!r}")
                self.stats.failed_flushes += 1
                unavailable = isinstance(exc, StorageUnavailable)
                metrics.FAILED_FLUSHES.labels("unavailable" if unavailable else "error").inc()
                if unavailable:
                    metrics.set_database_up(False)
                    self._down_until = time.monotonic() + self.config.outage_backoff_seconds
                    log.warning("flush of %d events failed, database unavailable: %s",
                                len(docs), exc)
                else:
                    log.error("flush of %d events failed: %s", len(docs), exc)
                for item in flush.items:
                    if not item.future.done():
                        item.future.set_exception(exc)
                return
            metrics.FLUSH_LATENCY.observe(time.perf_counter() - started)
            metrics.set_database_up(True)
            self.stats.flushes += 1
            self.stats.events_written += len(docs) - len(outcome.duplicate) - len(outcome.failed)
            self._down_until = 0.0
            offset = 0
            duplicate, failed = outcome.duplicate, outcome.failed
            for item in flush.items:
                indexes = range(offset, offset + len(item.docs))
                offset += len(item.docs)
                if item.future.done():
                    continue
                # Most flushes hold no duplicate and no failure: then no event is looked up.
                failures = [failed[i] for i in indexes if i in failed] if failed else None
                if failures:
                    item.future.set_exception(StorageError(failures[0]))
                elif duplicate:
                    item.future.set_result([i not in duplicate for i in indexes])
                else:
                    item.future.set_result([True] * len(indexes))
        finally:
            self._queued_events -= flush.size
            metrics.WRITE_QUEUE.dec(flush.size)


def _consume_outcome(future: asyncio.Future[list[bool]]) -> None:
    if not future.cancelled():
        future.exception()
