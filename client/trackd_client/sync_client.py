"""``Client``: the threaded SDK. ``track()`` queues and returns; sender threads batch.

``track()`` checks the event, gives it its id and time, and queues it; ``max_in_flight``
daemon threads take batches from the queue (full ones at once, others after
``flush_interval``) and send each, with its idempotency key, until it is stored or fails
for good (see :mod:`trackd_client.retry`). ``flush()`` waits for what was queued before
it; ``close()`` flushes, then stops the threads and the channel. A client not closed is
closed at interpreter exit (``atexit``), so a script that tracks and ends loses nothing
(within ``close_timeout``).
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import grpc
from google.protobuf.message import Message

from trackd_client import encode
from trackd_client.buffer import Batch, Kind, Stats
from trackd_client.core import ClientCore
from trackd_client.delivery import (
    Failure,
    accepted,
    failure,
    not_sent,
)
from trackd_client.errors import DeliveryError
from trackd_client.options import Options


class Client(ClientCore):
    """A trackd client for threaded code. Thread-safe; one per process is plenty.

    ``Client("127.0.0.1:50051", key, flush_interval=0.5, when_full="drop")``: every
    keyword is a field of :class:`trackd_client.Options`; ``credentials`` (a
    ``grpc.ChannelCredentials``) makes a TLS channel instead of a plaintext one.
    """

    def __init__(self, target: str, api_key: str, *,
                 credentials: grpc.ChannelCredentials | None = None,
                 options: Options | None = None, **settings: Any) -> None:
        super().__init__(api_key, options, settings)
        self._channel: grpc.Channel = self._open_channel(grpc, target, credentials)
        self._rpcs = self._rpcs_on(self._channel)
        self._cond = threading.Condition()
        self._abort = threading.Event()
        self._calls: set[grpc.Future] = set()
        self._threads = [threading.Thread(target=self._send_loop, daemon=True,
                                          name=f"trackd-client-{i}")
                         for i in range(self.options.max_in_flight)]
        for thread in self._threads:
            thread.start()
        atexit.register(self.close)

    # -- the caller's side ------------------------------------------------------------

    def track(self, name: str, user_id: str | None = None, anonymous_id: str | None = None,
              properties: Mapping[str, Any] | None = None, timestamp: datetime | None = None,
              event_id: str | None = None) -> str:
        """Queue an event; its id (``event_id``, else a new UUID). Raises ValueError or
        TypeError (naming the field) for an event the server would refuse, QueueFull
        when the queue is full (policies "raise", and "block" after its timeout),
        ClientClosed after ``close()``."""
        message = encode.event(name, user_id, anonymous_id, properties, timestamp, event_id)
        self._put("events", message)
        return message.event_id

    def identify(self, user_id: str, traits: Mapping[str, Any] | None = None,
                 anonymous_ids: Sequence[str] = ()) -> None:
        """Queue an upsert of user ``user_id`` (UserService, needs the key's
        ``users:write`` scope): ``traits`` are merged into the stored ones (a ``None``
        trait is removed) and ``anonymous_ids`` linked to the user."""
        self._put("users", encode.user(user_id, traits, anonymous_ids))

    def _put(self, kind: Kind, message: Message) -> None:
        with self._cond:
            self._check_open()
            if self._settled_without_queueing(kind):
                return
            if self._buffer.full() and not self._cond.wait_for(self._has_room,
                                                               self.options.block_timeout):
                raise self._queue_full()
            if self._queue(kind, message):
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far now; wait (up to ``timeout`` seconds) until it
        is stored or has failed. True when it all was done in time."""
        with self._cond:
            target = self._buffer.last_seq
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._buffer.done_through(target), timeout)
            finally:
                self._flushing -= 1

    def stats(self) -> Stats:
        with self._cond:
            return super().stats()

    def close(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout``, default ``close_timeout``), then stop; what is still
        unsent then is counted failed and reported. Calling it again does nothing."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        atexit.unregister(self.close)
        try:
            self.flush(self.options.close_timeout if timeout is None else timeout)
        finally:
            self._abort.set()
            with self._cond:
                for call in list(self._calls):
                    call.cancel()
                self._cond.notify_all()
            for thread in self._threads:
                thread.join()
            with self._cond:
                lost = self._buffer.fail_queued()
            self._report_unsent(lost)
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the sender threads -----------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._abort.is_set():
                        return
                    now = time.monotonic()
                    batch = self._take(now)
                    if batch is not None:
                        self._cond.notify_all()  # room in the queue for blocked callers
                        break
                    if self._closed and not len(self._buffer):
                        return
                    due = self._buffer.due_at()
                    self._cond.wait(None if due is None else max(0.0, due - now))
            self._deliver(batch)

    def _deliver(self, batch: Batch) -> None:
        attempt = 0
        sent, error, fail = 0, None, None
        while True:
            if batch.kind in self._stopped:
                break
            if self._abort.is_set():
                error = not_sent(batch, "the client was closed while it was being sent")
                break
            call = self._rpcs[batch.kind].future(batch.request(), metadata=self._metadata,
                                                  timeout=self.options.rpc_timeout)
            with self._cond:
                self._calls.add(call)
                if self._abort.is_set():
                    call.cancel()  # close() began after the check above, and missed it
            try:
                response = call.result()
            except grpc.FutureCancelledError:
                continue  # cancelled by close(): the loop reports it
            except grpc.RpcError as exc:
                if self._abort.is_set():
                    continue  # cancelled by close(): the loop reports it
                fail = failure(batch, exc.code(), exc.details() or "", exc.trailing_metadata())
                attempt += 1
                delay = self._retry_delay(fail, attempt)
                if delay is not None:
                    with self._cond:
                        self._buffer.retried += 1
                    self._abort.wait(delay)
                    continue
                error = fail.error
                break
            else:
                sent, error = accepted(batch, response)
                break
            finally:
                with self._cond:
                    self._calls.discard(call)
        self._finish(batch, sent, error, fail)

    def _finish(self, batch: Batch, sent: int, error: DeliveryError | None,
                fail: Failure | None) -> None:
        with self._cond:
            first_stop = self._settle(batch, sent, error, fail)
            self._cond.notify_all()
        self._tell(batch, error, first_stop)
