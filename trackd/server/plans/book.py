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

import logging
from collections.abc import AsyncIterator

import orjson

from trackd.server.errors import storage_call
from trackd.server.fleet_cache import FleetCache
from trackd.server.plans.rules import Plan, PlanError, compile_plan
from trackd.storage.plans import PlanFeedUnsupported, PlanRepository

log = logging.getLogger(__name__)


class PlanBook(FleetCache[str, Plan | None, str]):
    """Each project's current plan, compiled, cached (no plan too) and dropped as a new
    version commits."""

    def __init__(self, plans: PlanRepository, cache_seconds: float = 5.0) -> None:
        super().__init__(cache_seconds, log=log, stream="tracking_plans",
                         unsupported=PlanFeedUnsupported, bound="a new plan applies")
        self._plans = plans

    def _changes(self) -> AsyncIterator[str | None]:
        return self._plans.changes()

    def _changed(self, change: str | None) -> None:
        self.forget(change)

    def forget(self, project_id: str | None) -> None:
        """Drop ``project_id``'s cached plan (None or "": every project's)."""
        self._generation += 1
        if project_id:
            self._cache.pop(project_id, None)
        else:
            self._cache.clear()

    async def current(self, project_id: str) -> Plan | None:
        """The project's current plan, compiled (None: it has none)."""
        return await self._get(project_id, lambda stale: self._load(project_id, stale))

    async def _load(self, project_id: str, stale: Plan | None) -> Plan | None:
        record = await storage_call(self._plans.current(project_id))
        if record is None:
            return None
        if stale is not None and stale.version == record.version:
            return stale  # still current: no need to compile it again
        try:
            return compile_plan(record.version, orjson.loads(record.plan_json))
        except (PlanError, orjson.JSONDecodeError):
            # Checked when set; only a document edited by hand gets here.
            log.exception("plan version %d of a project cannot be compiled; "
                          "judging by none", record.version)
            return None
