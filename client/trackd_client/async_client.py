"""``AsyncClient``: the asyncio SDK, the same queue and rules as ``Client`` on grpc.aio.

``await client.track(...)`` queues and returns at once (it waits only under the "block"
policy with a full queue); ``max_in_flight`` sender tasks take batches from the queue and
send them with retries (see :mod:`trackd_client.retry`). Use it as ``async with
AsyncClient(...) as client:`` or call ``await client.close()``: unlike ``Client`` it
cannot flush at interpreter exit, since its event loop is gone by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf.message import Message

from trackd.v1 import tracking_pb2_grpc, users_pb2_grpc
from trackd_client import encode
from trackd_client.buffer import Batch, Buffer, Kind, Stats
from trackd_client.delivery import (
    Failure,
    accepted,
    failure,
    log,
    not_sent,
    report,
    settle,
)
from trackd_client.errors import ClientClosed, DeliveryError, QueueFull
from trackd_client.options import Options


class AsyncClient:
    """A trackd client for asyncio code; use it from one event loop.

    Takes the same arguments as :class:`trackd_client.Client`.
    """

    def __init__(self, target: str, api_key: str, *,
                 credentials: grpc.ChannelCredentials | None = None,
                 options: Options | None = None, **settings: Any) -> None:
        self.options = dataclasses.replace(options or Options(), **settings)
        o = self.options
        self._target = target
        self._credentials = credentials
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._buffer = Buffer(o.max_queue_size, o.batch_size, o.flush_interval,
                              o.max_batch_bytes)
        self._channel: grpc.aio.Channel | None = None
        self._rpcs: dict[Kind, Any] = {}
        self._cond: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._flushing = 0
        self._closed = False
        self._stopped: dict[Kind, DeliveryError] = {}

    def _start(self) -> asyncio.Condition:
        """The channel and the sender tasks, made on first use, in the running loop."""
        if self._cond is not None:
            return self._cond
        o = self.options
        self._channel = (
            grpc.aio.secure_channel(self._target, self._credentials, o.grpc_options())
            if self._credentials is not None
            else grpc.aio.insecure_channel(self._target, o.grpc_options()))
        tracking = tracking_pb2_grpc.TrackingServiceStub(self._channel)
        users = users_pb2_grpc.UserServiceStub(self._channel)
        self._rpcs = {"events": tracking.BatchTrack, "users": users.BatchUpsertUsers}
        self._cond = asyncio.Condition()
        self._tasks = [asyncio.create_task(self._send_loop(), name=f"trackd-client-{i}")
                       for i in range(o.max_in_flight)]
        return self._cond

    # -- the caller's side ------------------------------------------------------------

    async def track(self, name: str, user_id: str | None = None,
                    anonymous_id: str | None = None,
                    properties: Mapping[str, Any] | None = None,
                    timestamp: datetime | None = None, event_id: str | None = None) -> str:
        """Queue an event; its id. The same checks and errors as ``Client.track``."""
        message = encode.event(name, user_id, anonymous_id, properties, timestamp, event_id)
        await self._put("events", message)
        return message.event_id

    async def identify(self, user_id: str, traits: Mapping[str, Any] | None = None,
                       anonymous_ids: Sequence[str] = ()) -> None:
        """Queue a user upsert, as ``Client.identify``."""
        await self._put("users", encode.user(user_id, traits, anonymous_ids))

    async def _put(self, kind: Kind, message: Message) -> None:
        if self._closed:
            raise ClientClosed("the trackd client is closed")
        cond = self._start()
        buffer = self._buffer
        async with cond:
            if kind in self._stopped:
                buffer.queued += 1  # refused by the server for this key: counted, not sent
                buffer.failed += 1
                return
            if buffer.full():
                policy = self.options.when_full
                if policy == "drop":
                    buffer.dropped += 1
                    return
                if policy == "raise":
                    raise QueueFull(f"the trackd client's queue holds {buffer.capacity} items")
                try:
                    async with asyncio.timeout(self.options.block_timeout):
                        await cond.wait_for(lambda: not buffer.full() or self._closed)
                except TimeoutError:
                    raise QueueFull(f"the trackd client's queue holds "
                                    f"{buffer.capacity} items") from None
                if self._closed:
                    raise ClientClosed("the trackd client is closed")
            if buffer.add(kind, message, time.monotonic()):
                cond.notify_all()

    # ``timeout`` as in Client's API, rather than asking callers for asyncio.timeout().
    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Send everything queued so far now; wait (up to ``timeout`` seconds) until it
        is stored or has failed. True when it all was done in time."""
        cond = self._start()
        async with cond:
            target = self._buffer.last_seq
            self._flushing += 1
            cond.notify_all()
            try:
                async with asyncio.timeout(timeout):
                    await cond.wait_for(lambda: self._buffer.done_through(target))
                return True
            except TimeoutError:
                return False
            finally:
                self._flushing -= 1

    def stats(self) -> Stats:
        return self._buffer.stats()

    async def close(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Flush (up to ``timeout``, default ``close_timeout``), then stop; what is still
        unsent then is counted failed and reported. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._cond is None:
            return  # never used
        try:
            await self.flush(self.options.close_timeout if timeout is None else timeout)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for batch in self._buffer.fail_queued():
                report(not_sent(batch, "the client was closed before it was sent"),
                       self.options.on_error)
            if self._channel is not None:
                await self._channel.close()

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- the sender tasks -------------------------------------------------------------

    async def _send_loop(self) -> None:
        cond = self._start()
        while True:
            async with cond:
                while True:
                    now = time.monotonic()
                    batch = self._buffer.take(now, force=self._flushing > 0 or self._closed)
                    if batch is not None:
                        cond.notify_all()  # room in the queue for blocked callers
                        break
                    due = self._buffer.due_at()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(
                                None if due is None else max(0.0, due - now)):
                            await cond.wait()
            await self._deliver(batch)

    async def _deliver(self, batch: Batch) -> None:
        attempt = 0
        sent, error, fail = 0, None, None
        try:
            while batch.kind not in self._stopped:
                try:
                    response = await self._rpcs[batch.kind](
                        batch.request(), metadata=self._metadata,
                        timeout=self.options.rpc_timeout)
                except grpc.aio.AioRpcError as exc:
                    fail = failure(batch, exc.code(), exc.details() or "",
                                   tuple(exc.trailing_metadata() or ()))
                    attempt += 1
                    max_attempts = self.options.max_attempts
                    if fail.retryable and (max_attempts is None or attempt < max_attempts):
                        self._buffer.retried += 1
                        delay = self.options.backoff.delay(attempt - 1, fail.retry_delay)
                        log.debug("trackd_client: %s; retrying in %.2f s", fail.error, delay)
                        await asyncio.sleep(delay)
                        continue
                    error = fail.error
                    break
                sent, error = accepted(batch, response)
                break
        except asyncio.CancelledError:
            # close() ran out of time while this batch was being sent or retried.
            error, fail = not_sent(batch, "the client was closed while it was being sent"), None
            self._buffer.finish(batch, 0, len(batch.messages))
            report(error, self.options.on_error)
            raise
        await self._finish(batch, sent, error, fail)

    async def _finish(self, batch: Batch, sent: int, error: DeliveryError | None,
                      fail: Failure | None) -> None:
        assert self._cond is not None
        async with self._cond:
            first_stop = settle(self._buffer, self._stopped, batch, sent, error, fail)
            self._cond.notify_all()
        if error is None or (batch.kind in self._stopped and not first_stop):
            return
        report(error, self.options.on_error, stops=first_stop)
