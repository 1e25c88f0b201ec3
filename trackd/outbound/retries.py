"""The retry half of a lane: the endpoint's queued messages, each user's first one when
it is due, in queue order.

A message is a head when no earlier queued message shares a user with it; only heads
are sent (several users at once, within the lane's concurrency), so a user's messages
leave the queue in the order they entered it. A head answered 2xx leaves the queue and
the next one of its users becomes the head; a head that fails is tried again after the
schedule's next step (with jitter, and not before a 429/503's ``Retry-After``), and after
the last step goes to the dead letters. Messages queued by a replay (not ``adopted``) are
counted as their users' first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from trackd.outbound.schedule import now_utc
from trackd.storage.deliveries import Message

if TYPE_CHECKING:
    from trackd.outbound.lane import Lane

log = logging.getLogger(__name__)

# How often the queue is looked at when nothing is due sooner.
POLL_SECONDS = 0.5
# Replayed messages counted (adopted) per look.
ADOPT_PER_LOOK = 2000


class RetryLoop:
    def __init__(self, lane: Lane) -> None:
        self._lane = lane
        self._running: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        lane = self._lane
        while True:
            new = await lane.queue.unadopted(lane.endpoint.id, ADOPT_PER_LOOK)
            if new:
                for message in new:
                    for key in message.keys:
                        lane.blocked[key] += 1
                await lane.queue.adopt(lane.endpoint.id, [m.msg_id for m in new])
            # Every user's first message, over the whole queue: one user's thousands of
            # queued messages do not hide another user's due retry.
            heads = await lane.queue.heads(lane.endpoint.id)
            now = now_utc()
            soonest = POLL_SECONDS
            for message in heads:
                if message.msg_id in self._running:
                    continue
                due = message.next_at or now
                if due <= now:
                    self._running[message.msg_id] = asyncio.create_task(self._send(message))
                else:
                    soonest = min(soonest, (due - now).total_seconds())
            for msg_id, task in list(self._running.items()):
                if task.done():
                    del self._running[msg_id]
                    task.result()  # a Disable or a storage failure ends the lane
            await asyncio.sleep(max(soonest, 0.01))

    async def _send(self, message: Message) -> None:
        lane = self._lane
        body = await lane.queue.body(lane.endpoint.id, message.msg_id)
        if body is None:  # replayed again meanwhile, or the endpoint was deleted
            return
        message.body = body
        async with lane.semaphore:
            answer, outcome, delay = await lane.attempt(message)
        endpoint_id = lane.endpoint.id
        if outcome == "delivered":
            await lane.queue.remove(endpoint_id, message.msg_id)
            lane.unblock(message)
            lane.queued = max(0, lane.queued - 1)
        elif outcome == "dead_letter":
            await lane.queue.dead_letter(endpoint_id, message, answer.error, now_utc())
            lane.unblock(message)
            lane.queued = max(0, lane.queued - 1)
        else:
            assert delay is not None
            await lane.queue.reschedule(endpoint_id, message.msg_id, message.attempts + 1,
                                        now_utc() + timedelta(seconds=delay), answer.error)

    async def close(self) -> None:
        for task in self._running.values():
            task.cancel()
        for task in self._running.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._running.clear()
