"""Each project's current tracking plan, compiled and cached, dropped fleet-wide.

A lookup is cached for ``cache_seconds`` (a project without a plan too, so its events
cost no database round trip), and a compiled version is kept as long as it is current,
so an event pays one dict lookup and its validator. The tracking_plans change stream
(:meth:`PlanBook.follow`) drops a project's cached plan as a new version commits,
whichever process set it (``trackd plans set`` on another machine): every instance and
worker judges by the new version within the stream's delay (about 0.1 s). Without change
streams, the cache's time is the bound.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from server.errors import storage_call
from server.plans.rules import Plan, PlanError, compile_plan
from server.tasks import cancel_and_wait
from storage import StorageUnavailable
from storage.plans import PlanFeedUnsupported, PlanRepository

log = logging.getLogger(__name__)

_CACHE_MAX_ENTRIES = 10_000
# After the plan stream fails, how long before opening it again.
_REFOLLOW_SECONDS = 2.0


class PlanBook:
    def __init__(self, plans: PlanRepository, cache_seconds: float = 5.0) -> None:
        self._plans = plans
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Plan | None]] = {}
        # Bumped by every change: a lookup that overlapped one is not cached.
        self._generation = 0
        self._follower: asyncio.Task[None] | None = None

    async def follow(self) -> None:
        """Start dropping changed plans from the cache (returns once the stream is open,
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
                async for project_id in self._plans.changes():
                    self.forget(project_id)
                    if not opened.done():
                        opened.set_result(None)
            except PlanFeedUnsupported as exc:
                log.info("no change streams (%s): a new plan applies within %g s",
                         exc, self._cache_seconds)
                if not opened.done():
                    opened.set_result(None)
                return
            except StorageUnavailable as exc:
                log.warning("lost the tracking_plans change stream (%s); reopening", exc)
            if not opened.done():
                opened.set_result(None)
            self.forget(None)
            await asyncio.sleep(_REFOLLOW_SECONDS)

    def forget(self, project_id: str | None) -> None:
        """Drop ``project_id``'s cached plan (None or "": every project's)."""
        self._generation += 1
        if project_id:
            self._cache.pop(project_id, None)
        else:
            self._cache.clear()

    async def current(self, project_id: str) -> Plan | None:
        """The project's current plan, compiled (None: it has none)."""
        now = time.monotonic()
        cached = self._cache.get(project_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        generation = self._generation
        record = await storage_call(self._plans.current(project_id))
        plan = None
        if record is not None:
            if cached is not None and cached[1] is not None \
                    and cached[1].version == record.version:
                plan = cached[1]  # still current: no need to compile it again
            else:
                try:
                    plan = compile_plan(record.version, orjson.loads(record.plan_json))
                except (PlanError, orjson.JSONDecodeError):
                    # Checked when set; only a document edited by hand gets here.
                    log.exception("plan version %d of a project cannot be compiled; "
                                  "judging by none", record.version)
        if self._cache_seconds > 0 and generation == self._generation:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[project_id] = (now + self._cache_seconds, plan)
        return plan
