"""Idempotency keys: a repeated request replays its first response and writes nothing.

Keyed by (project, scope, key) for 24 hours, where the scope is the RPC, so one key used
on two routes means two things. "The same request" means the same request message,
compared by a hash of its deterministic serialization (the REST gateway builds that
message from the parsed JSON, so formatting differences in a body do not matter).

While a request runs, its key is held by a short lease (``lease``, 5 s by default) that
the running request renews every third of it: a request on any instance that finds the
key held waits (up to ``wait_for_in_flight``) and takes it over once the lease has run out
unrenewed, which is what a crashed instance leaves; a live instance's key is never taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from google.protobuf.message import Message

from trackd.server import metrics
from trackd.server.errors import Aborted, InvalidArgument, Unavailable
from trackd.storage import StorageUnavailable
from trackd.storage.idempotency import (
    COMPLETED,
    IdempotencyRecord,
    IdempotencyRepository,
    Reservation,
)
from trackd.v1 import errors_pb2

log = logging.getLogger(__name__)

ResponseT = TypeVar("ResponseT", bound=Message)

REUSE_REASON = errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSE
IN_USE_REASON = errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_IN_USE


def fingerprint(request: Message) -> str:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


class IdempotencyGuard:
    def __init__(
        self,
        records: IdempotencyRepository,
        *,
        lease: timedelta = timedelta(seconds=5),
        wait_for_in_flight: float = 10.0,
    ) -> None:
        self._records = records
        self._lease = lease
        self._wait = wait_for_in_flight
        # Requests with one key run one at a time in this process, so when this process
        # reserves a key, any pending record it owns is left over from a request whose
        # release was lost (the database went away), and is taken over at once instead
        # of after the lease.
        self._owner = uuid.uuid4().hex
        self._running: dict[tuple[str, str, str], asyncio.Future[None]] = {}

    async def run(
        self,
        project_id: str,
        scope: str,
        key: str,
        request: Message,
        response_type: type[ResponseT],
        execute: Callable[[], Awaitable[ResponseT]],
    ) -> ResponseT:
        """Run ``execute`` once per key; replay its response to identical repeats.

        Without a key (``""``) it simply runs ``execute``.
        """
        if not key:
            return await execute()
        ident = (project_id, scope, key)
        async with self._alone(ident):
            return await self._once(ident, request, response_type, execute)

    @contextlib.asynccontextmanager
    async def _alone(self, ident: tuple[str, str, str]) -> AsyncIterator[None]:
        """Wait until no other request of this process holds ``ident``, then hold it."""
        while (running := self._running.get(ident)) is not None:
            await asyncio.wait([running])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._running[ident] = done
        try:
            yield
        finally:
            del self._running[ident]
            done.set_result(None)

    async def _once(
        self, ident: tuple[str, str, str], request: Message, response_type: type[ResponseT],
        execute: Callable[[], Awaitable[ResponseT]],
    ) -> ResponseT:
        project_id, scope, key = ident
        wanted = fingerprint(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        delay = 0.02
        while True:
            try:
                held = await self._records.reserve(
                    project_id, scope, key, wanted, datetime.now(UTC), self._lease,
                    owner=self._owner)
            except StorageUnavailable as exc:
                raise Unavailable("the database is unavailable; retry later") from exc
            if not isinstance(held, IdempotencyRecord):
                break
            if held.fingerprint != wanted:
                raise InvalidArgument.one(
                    "idempotency_key",
                    "was already used with a different request",
                    reason=REUSE_REASON)
            if held.state == COMPLETED and held.response is not None:
                metrics.IDEMPOTENT_REPLAYS.labels(scope).inc()
                return response_type.FromString(held.response)
            if loop.time() >= deadline:
                raise Aborted("a request with this idempotency key is still in progress; "
                              "retry later", reason=IN_USE_REASON)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

        renewing = asyncio.create_task(self._renew(held, key))
        try:
            response = await execute()
        except BaseException:
            await self._records.release(held)
            raise
        finally:
            renewing.cancel()
        try:
            await self._records.complete(held, response.SerializeToString())
        except StorageUnavailable:
            # The events are durable, so the answer is still success; without the record
            # a retry after the lease re-runs the request, and its event ids dedupe it.
            log.warning("could not record the response for idempotency key %r", key)
        return response

    async def _renew(self, held: Reservation, key: str) -> None:
        """Keep the lease of ``held`` while its request runs."""
        every = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                if not await self._records.renew(held, datetime.now(UTC), self._lease):
                    log.warning("idempotency key %r was taken over while its request ran "
                                "(this process stalled past its lease)", key)
                    return
            except StorageUnavailable:
                log.debug("could not renew the lease of idempotency key %r", key)
