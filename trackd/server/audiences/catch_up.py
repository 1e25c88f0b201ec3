"""Marks on the change feed: "has every change committed before now been applied?"

The audience index is exact because, before an evaluation reads it, a mark is written to
the database and the index waits for its change feed to deliver it: every write
acknowledged (by any instance) before the evaluation began committed before the mark, so
its change has been applied. :class:`CatchUp` writes those marks and releases their
waiters as the feed delivers them.

May import: :mod:`trackd.storage` (the feed and its errors).
"""

from __future__ import annotations

import asyncio

from trackd.storage import StorageError
from trackd.storage.changes import ChangeFeed

# How long an evaluation waits for the feed to deliver its mark before reading the
# database instead (a lagging feed must not make evaluations slower than no index).
CATCH_UP_SECONDS = 5.0


class CatchUp:
    """The marks one index writes on its feed, and who waits for which."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self._waiters: list[tuple[int, asyncio.Future[bool]]] = []
        self._marked = 0  # the highest of our marks the feed has delivered
        self._next_mark: asyncio.Task[bool] | None = None
        self._marking: set[asyncio.Task[bool]] = set()

    async def wait(self) -> bool:
        """Whether every change committed before this call has been applied (waits for
        it). Callers arriving before the next mark is written share it: one write per
        burst of evaluations, not one each."""
        if self._next_mark is None:
            self._next_mark = asyncio.create_task(self._mark_and_wait())
            self._marking.add(self._next_mark)
            self._next_mark.add_done_callback(self._marking.discard)
        return await asyncio.shield(self._next_mark)

    async def _mark_and_wait(self) -> bool:
        self._next_mark = None  # callers from here on need a later mark than this one
        try:
            seq = await self._feed.mark()
        except StorageError:
            return False
        if self._marked >= seq:  # delivered before the write's reply was read
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, waiter))
        try:
            async with asyncio.timeout(CATCH_UP_SECONDS):
                return await waiter
        except TimeoutError:
            self._waiters = [(s, w) for s, w in self._waiters if w is not waiter]
            return False

    def delivered(self, seq: int) -> None:
        """The feed delivered our mark ``seq``: release whoever waits for it or an earlier."""
        self._marked = max(self._marked, seq)
        keep = []
        for wanted, waiter in self._waiters:
            if wanted <= seq:
                if not waiter.done():
                    waiter.set_result(True)
            else:
                keep.append((wanted, waiter))
        self._waiters = keep

    def fail_all(self) -> None:
        """The index was emptied: nobody waiting can be told the changes were applied."""
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(False)
        self._waiters = []

    def tasks(self) -> list[asyncio.Task[bool]]:
        """The marks being written now (to cancel on close)."""
        return list(self._marking)
