"""A lookup cache each process keeps, emptied fleet-wide by a collection's change stream.

A lookup is cached for ``cache_seconds``; :meth:`FleetCache.follow` opens the collection's
change stream and drops what a change makes stale as it commits, whichever process made
it, so every instance and worker sees the change within the stream's delay (about 0.1 s).
Without change streams, the cache's time is the bound. The API key cache
(:class:`trackd.server.auth.Authenticator`) and the tracking plan cache
(:class:`trackd.server.plans.book.PlanBook`) are the two; each says which entries one change
makes stale.

May import: :mod:`trackd.server.tasks` and :mod:`trackd.storage`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from trackd.server.tasks import being_cancelled, cancel_and_wait
from trackd.storage import StorageUnavailable

K = TypeVar("K")
V = TypeVar("V")
C = TypeVar("C")

_CACHE_MAX_ENTRIES = 10_000
# After the change stream fails, how long before opening it again.
_REFOLLOW_SECONDS = 2.0


class FleetCache(ABC, Generic[K, V, C]):
    """Values of ``V`` looked up by ``K``, cached; the stream's changes are ``C``.

    ``stream`` names the collection in the log, ``unsupported`` is the storage error its
    feed raises without change streams, and ``bound`` says what then waits for the cache's
    time (``"a revoked key is refused"``)."""

    def __init__(self, cache_seconds: float, *, log: logging.Logger, stream: str,
                 unsupported: type[Exception], bound: str) -> None:
        self._cache_seconds = cache_seconds
        self._cache: dict[K, tuple[float, V]] = {}
        # Bumped by every change: a lookup that overlapped one is not cached (it may have
        # read the value before the change).
        self._generation = 0
        self._follower: asyncio.Task[None] | None = None
        self._log = log
        self._stream = stream
        self._unsupported = unsupported
        self._bound = bound

    @abstractmethod
    def _changes(self) -> AsyncIterator[C | None]:
        """The collection's changes as they commit; None first, once the stream is open."""

    @abstractmethod
    def _changed(self, change: C | None) -> None:
        """Drop what ``change`` makes stale (None: everything), and bump ``_generation``
        so that no lookup in flight is cached."""

    async def follow(self) -> None:
        """Start dropping changed entries from the cache (returns once the stream is open,
        or has failed to open)."""
        if self._cache_seconds <= 0 or self._follower is not None:
            return
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._follower = asyncio.create_task(self._follow(opened))
        await asyncio.wait([opened, self._follower], return_when=asyncio.FIRST_COMPLETED)

    async def close(self) -> None:
        await cancel_and_wait(self._follower)

    async def _follow(self, opened: asyncio.Future[None]) -> None:
        while True:
            try:
                async for change in self._changes():
                    self._changed(change)
                    if not opened.done():
                        opened.set_result(None)
            except self._unsupported as exc:
                self._log.info("no change streams (%s): %s within %g s",
                               exc, self._bound, self._cache_seconds)
                if not opened.done():
                    opened.set_result(None)
                return
            except StorageUnavailable as exc:
                if being_cancelled():
                    # close() cancelled us and the stream's close, on a database that is
                    # gone, replaced the CancelledError: reopening would loop until the
                    # database came back, and hold close() (and a drain) that long.
                    raise asyncio.CancelledError from exc
                self._log.warning("lost the %s change stream (%s); reopening", self._stream, exc)
            if not opened.done():
                opened.set_result(None)
            self._changed(None)
            await asyncio.sleep(_REFOLLOW_SECONDS)

    async def _get(self, key: K, load: Callable[[V | None], Awaitable[V]]) -> V:
        """``key``'s value: cached while fresh, else ``load``-ed (given the stale value,
        if one is cached) and cached unless a change came meanwhile."""
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        value = await load(None if cached is None else cached[1])
        if self._cache_seconds > 0 and generation == self._generation:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = (now + self._cache_seconds, value)
        return value
