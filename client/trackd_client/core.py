"""What ``Client`` and ``AsyncClient`` share: one queue, one set of rules, two ways to wait.

:class:`ClientCore` holds the options, the key's metadata, the buffer and what the server
refused for good, and decides everything that does not depend on threads or asyncio:
whether an item is queued, dropped or refused, which batch goes next, whether a failed
attempt is retried and after how long, and what is reported when a batch ends. The two
clients add only their locks, their waits and their gRPC calls.

May import: grpc, protobuf, the generated ``trackd.v1`` stubs and the SDK's own modules.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.message import Message

from trackd.v1 import tracking_pb2_grpc, users_pb2_grpc
from trackd_client.buffer import Batch, Buffer, Kind, Stats
from trackd_client.delivery import Failure, log, not_sent, report, settle
from trackd_client.errors import ClientClosed, DeliveryError, QueueFull
from trackd_client.options import Options


class ClientCore:
    """The state and the decisions of a client, called with the client's lock held
    where it says so."""

    def __init__(self, api_key: str, options: Options | None, settings: dict[str, Any]) -> None:
        self.options = dataclasses.replace(options or Options(), **settings)
        o = self.options
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._buffer = Buffer(o.max_queue_size, o.batch_size, o.flush_interval,
                              o.max_batch_bytes)
        self._flushing = 0
        self._closed = False
        self._stopped: dict[Kind, DeliveryError] = {}  # kinds the key may not send

    def _open_channel(self, grpc_api: ModuleType, target: str,
                      credentials: grpc.ChannelCredentials | None) -> Any:
        """A channel of ``grpc_api`` (``grpc`` or ``grpc.aio``): TLS with ``credentials``,
        else plaintext."""
        options = self.options.grpc_options()
        if credentials is not None:
            return grpc_api.secure_channel(target, credentials, options)
        return grpc_api.insecure_channel(target, options)

    @staticmethod
    def _rpcs_on(channel: Any) -> dict[Kind, Any]:
        """The batch RPC each kind of item is sent with."""
        tracking = tracking_pb2_grpc.TrackingServiceStub(channel)
        users = users_pb2_grpc.UserServiceStub(channel)
        return {"events": tracking.BatchTrack, "users": users.BatchUpsertUsers}

    # -- the caller's side ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("the trackd client is closed")

    def _settled_without_queueing(self, kind: Kind) -> bool:
        """(Lock held.) Whether the item is done with before it is queued: counted failed
        for a kind the server refused for good, or dropped from a full queue under the
        "drop" policy. A full queue under "raise" raises QueueFull; under "block" the
        caller waits for room after this returns False."""
        buffer = self._buffer
        if kind in self._stopped:
            buffer.queued += 1  # refused by the server for this key: counted, not sent
            buffer.failed += 1
            return True
        if buffer.full():
            policy = self.options.when_full
            if policy == "drop":
                buffer.dropped += 1
                return True
            if policy == "raise":
                raise self._queue_full()
        return False

    def _queue_full(self) -> QueueFull:
        return QueueFull(f"the trackd client's queue holds {self._buffer.capacity} items")

    def _has_room(self) -> bool:
        return not self._buffer.full() or self._closed

    def _queue(self, kind: Kind, message: Message) -> bool:
        """(Lock held, after waiting for room.) Queue the item; whether a batch is now
        due, so the senders must be woken."""
        self._check_open()
        return self._buffer.add(kind, message, time.monotonic())

    def stats(self) -> Stats:
        return self._buffer.stats()

    # -- the senders' side ------------------------------------------------------------

    def _take(self, now: float) -> Batch | None:
        """(Lock held.) The next batch to send: a full one, a due one, or any while a
        flush or close waits."""
        return self._buffer.take(now, force=self._flushing > 0 or self._closed)

    def _retry_delay(self, fail: Failure, attempt: int) -> float | None:
        """After the ``attempt``-th failed attempt: how long to wait before the next, or
        None to give up."""
        max_attempts = self.options.max_attempts
        if not fail.retryable or (max_attempts is not None and attempt >= max_attempts):
            return None
        delay = self.options.backoff.delay(attempt - 1, fail.retry_delay)
        log.debug("trackd_client: %s; retrying in %.2f s", fail.error, delay)
        return delay

    def _settle(self, batch: Batch, sent: int, error: DeliveryError | None,
                fail: Failure | None) -> bool:
        """(Lock held.) Account a finished batch; whether it is the first to stop its kind."""
        return settle(self._buffer, self._stopped, batch, sent, error, fail)

    def _tell(self, batch: Batch, error: DeliveryError | None, first_stop: bool) -> None:
        """(Lock not held.) Report a batch that will not arrive, once per cause."""
        if error is None or (batch.kind in self._stopped and not first_stop):
            return  # delivered; or refused like a batch already reported: said once
        report(error, self.options.on_error, stops=first_stop)

    def _report_unsent(self, batches: Sequence[Batch]) -> None:
        for batch in batches:
            report(not_sent(batch, "the client was closed before it was sent"),
                   self.options.on_error)
