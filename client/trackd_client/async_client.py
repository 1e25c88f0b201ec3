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
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf.message import Message

from trackd_client import encode
from trackd_client.buffer import Batch, Kind
from trackd_client.core import ClientCore
from trackd_client.delivery import (
    Failure,
    accepted,
    failure,
    not_sent,
    report,
)
from trackd_client.errors import DeliveryError
from trackd_client.options import Options


class AsyncClient(ClientCore):
    """A trackd client for asyncio code; use it from one event loop.

    Takes the same arguments as :class:`trackd_client.Client`.
    """

    def __init__(self, target: str, api_key: str, *,
                 credentials: grpc.ChannelCredentials | None = None,
                 options: Options | None = None, **settings: Any) -> None:
        super().__init__(api_key, options, settings)
        self._target = target
        self._credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._rpcs: dict[Kind, Any] = {}
        self._cond: asyncio.Condition | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _start(self) -> asyncio.Condition:
        """The channel and the sender tasks, made on first use, in the running loop."""
        if self._cond is not None:
            return self._cond
        self._channel = self._open_channel(grpc.aio, self._target, self._credentials)
        self._rpcs = self._rpcs_on(self._channel)
        self._cond = asyncio.Condition()
        self._tasks = [asyncio.create_task(self._send_loop(), name=f"trackd-client-{i}")
                       for i in range(self.options.max_in_flight)]
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
        self._check_open()
        cond = self._start()
        async with cond:
            if self._settled_without_queueing(kind):
                return
            if self._buffer.full():
                try:
                    async with asyncio.timeout(self.options.block_timeout):
                        await cond.wait_for(self._has_room)
                except TimeoutError:
                    raise self._queue_full() from None
            if self._queue(kind, message):
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
            self._report_unsent(self._buffer.fail_queued())
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
                    batch = self._take(now)
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
                    delay = self._retry_delay(fail, attempt)
                    if delay is not None:
                        self._buffer.retried += 1
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
            first_stop = self._settle(batch, sent, error, fail)
            self._cond.notify_all()
        self._tell(batch, error, first_stop)
