"""The deliverer: takes the lease of enabled endpoints nobody delivers and runs a lane
(:mod:`trackd.outbound.lane`) for each, in this process, beside the server.

Every trackd instance (and every worker of ``--workers``) runs one. An endpoint is
delivered by one of them at a time: the one holding its lease, renewed every quarter of
``lease_seconds``; when that instance dies, another takes the endpoint within
``lease_seconds`` and a quarter, and resumes from the saved cursor and queue. A lane that
fails (the database went away) lets its endpoint go, and the endpoint is taken again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import timedelta
from typing import Any

from trackd.outbound import metrics
from trackd.outbound.config import DeliveryConfig
from trackd.outbound.http import Sender
from trackd.outbound.lane import Lane
from trackd.outbound.schedule import now_utc
from trackd.storage.deliveries import DeliveryQueue
from trackd.storage.errors import StorageError
from trackd.storage.webhooks import EndpointRepository

log = logging.getLogger(__name__)


class Deliverer:
    def __init__(self, db: Any, endpoints: EndpointRepository, queue: DeliveryQueue,
                 config: DeliveryConfig | None = None) -> None:
        self.config = config or DeliveryConfig()
        self._db = db
        self._endpoints = endpoints
        self._queue = queue
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._sender = Sender(self.config.timeout_seconds, self.config.max_response_bytes,
                              self.config.allow_private)
        self.lanes: dict[str, tuple[Lane, asyncio.Task[None]]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._claim_loop())

    async def _claim_loop(self) -> None:
        lease = timedelta(seconds=self.config.lease_seconds)
        while True:
            room = self.config.max_endpoints - len(self.lanes)
            if room > 0:
                try:
                    claimed = await self._endpoints.claim(self.holder, now_utc(), lease, room,
                                                          running=list(self.lanes))
                except StorageError as exc:
                    log.warning("webhook deliverer: cannot look for endpoints (%s)", exc)
                    claimed = []
                for endpoint in claimed:
                    if endpoint.id in self.lanes:  # one lane per endpoint, always
                        continue
                    lane = Lane(endpoint, self._endpoints, self._queue, self._db, self._sender,
                                self.config, self.holder)
                    task = asyncio.get_running_loop().create_task(self._run(lane))
                    self.lanes[endpoint.id] = (lane, task)
            metrics.ENDPOINTS.set(len(self.lanes))
            metrics.LAG.set(max((lane.lag_seconds for lane, _ in self.lanes.values()),
                                default=0.0))
            await asyncio.sleep(self.config.lease_seconds / 4)

    async def _run(self, lane: Lane) -> None:
        try:
            await lane.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook endpoint %s: delivery failed; it is let go and taken "
                          "again", lane.endpoint.id)
            with contextlib.suppress(StorageError):
                await lane.stop()
        finally:
            if self.lanes.get(lane.endpoint.id, (None,))[0] is lane:
                del self.lanes[lane.endpoint.id]

    async def close(self) -> None:
        """Stop delivering: save each lane's progress and let its endpoint go."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        lanes = list(self.lanes.values())
        for _, task in lanes:
            task.cancel()
        for lane, task in lanes:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(StorageError):
                await lane.stop()
        self.lanes.clear()
        metrics.ENDPOINTS.set(0)
        metrics.LAG.set(0)
        await self._sender.close()
