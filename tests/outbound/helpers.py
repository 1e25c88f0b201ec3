"""Real HTTP receivers on port 0 for the webhook tests, and what they saw.

A :class:`Receiver` is an aiohttp server answering each POST with what its ``behave``
callable says (a status, headers, or a wait), recording every request's headers and body
bytes; :func:`verify` checks a request as a receiver would, with the reference Standard
Webhooks library.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from trackd.outbound.config import DeliveryConfig
from trackd.outbound.deliverer import Deliverer
from trackd.storage import Store


@dataclass
class Seen:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    wait: asyncio.Event | None = None  # answer only once set (a hanging receiver)


Behaviour = Callable[[dict[str, str], bytes], Reply | Awaitable[Reply]]


class Receiver:
    def __init__(self, behave: Behaviour | None = None) -> None:
        self.behave = behave or (lambda headers, body: Reply())
        self.seen: list[Seen] = []
        self.arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        reply = self.behave(headers, body)
        if not isinstance(reply, Reply):
            reply = await reply
        if reply.wait is not None:
            await reply.wait.wait()
        async with self.arrived:
            self.seen.append(Seen(headers, body, reply.status))
            self.arrived.notify_all()
        return web.Response(status=reply.status, headers=reply.headers, text="ok")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, condition: Callable[[list[Seen]], bool],
                       seconds: float = 60.0) -> list[Seen]:
        """Wait (generously) until ``condition(self.seen)``; fail with what was seen."""
        async def until() -> None:
            async with self.arrived:
                await self.arrived.wait_for(lambda: condition(self.seen))
        try:
            await asyncio.wait_for(until(), seconds)
        except TimeoutError:
            raise AssertionError(f"receiver saw {len(self.seen)} requests: "
                                 f"{[s.status for s in self.seen][:50]}") from None
        return self.seen

    def delivered(self) -> list[Seen]:
        return [s for s in self.seen if 200 <= s.status < 300]


def verify(secret: str, seen: Seen) -> Any:
    """The body as a receiver's Standard Webhooks library verifies it (raises if not)."""
    return Webhook(secret).verify(seen.body, seen.headers)


def names_in(seen: list[Seen]) -> list[str]:
    """Event names of delivered messages, in arrival order (batches flattened)."""
    out: list[str] = []
    for s in seen:
        if not 200 <= s.status < 300:
            continue
        body = s.json
        events = body["data"]["events"] if body["type"] == "event.batch" else [body["data"]]
        out.extend(e["name"] for e in events)
    return out


@asynccontextmanager
async def delivering(store: Store, **config: Any) -> AsyncIterator[Deliverer]:
    """A deliverer of the test's database (private addresses allowed, a short lease and
    retry schedule unless ``config`` says otherwise)."""
    options: dict[str, Any] = {"allow_private": True, "lease_seconds": 2.0,
                               "retry_schedule": (0.2, 0.2, 0.2), "jitter": 0.0}
    options.update(config)
    deliverer = Deliverer(store.db, store.webhooks, store.deliveries, DeliveryConfig(**options))
    deliverer.start()
    try:
        yield deliverer
    finally:
        await deliverer.close()


@asynccontextmanager
async def receiving(behave: Behaviour | None = None) -> AsyncIterator[Receiver]:
    receiver = await Receiver(behave).start()
    try:
        yield receiver
    finally:
        await receiver.close()
