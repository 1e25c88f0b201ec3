"""The console's decisions: what was decided about each request that stored nothing new,
recorded off the acknowledgement path, and per-minute counts of everything.

A handler that decides calls :class:`DecisionRecorder` (``refused`` for a
:class:`~trackd.server.errors.ServiceError` of a TrackingService call, a ``quarantined``
decision when it is a :class:`~trackd.server.plans.verdict.PlanRefusal`; ``written`` once a
call's events are durable), which only appends to memory and returns: nothing here awaits
anything on a call's path. A task flushes every :attr:`RecorderLimits.interval` seconds,
in one batch, to :mod:`trackd.storage.decisions`, which keeps decisions an hour.

Bounds, per instance and flush interval:

- at most :attr:`RecorderLimits.queue` decisions are kept; past that they are counted,
  not kept (a head sample: the first ones of the interval), and the flush records one
  ``sampling`` note per project saying how many were not recorded, which the decision
  stream passes on (the console says so);
- the per-minute counters (stored events, duplicates, rate-limited and refused requests
  by reason, events by name) count every decision, recorded or not; a project's distinct
  event names counted per interval are capped at :attr:`RecorderLimits.names`, the rest
  are counted under :data:`OTHER_NAMES`; plan violations (of events stored, and of
  events a blocking plan quarantined) are counted per ``<kind>: <event name>`` under the
  same cap, the rest under :data:`OTHER_VIOLATIONS`;
- a flush the database refuses is dropped (counted as ``lost``), never retried or waited on.

Only what the refusal names is kept (code, reason, first field and its description, or
its message), with the request id, door and RPC: never a key, a header or a body.
Calls whose caller is not authenticated (no project) are not recorded: there is no
project to show them to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc

from trackd.server import metrics
from trackd.server.errors import InvalidArgument, ServiceError
from trackd.server.observability import CallInfo, current_call
from trackd.server.plans.verdict import PlanRefusal
from trackd.storage import StorageError
from trackd.storage.decisions import CountKey

log = logging.getLogger(__name__)

REFUSED = "refused"
DUPLICATE = "duplicate"
RATE_LIMITED = "rate_limited"
QUARANTINED = "quarantined"
SAMPLING = "sampling"
STORED = "stored"
NAME = "name"  # a counter of stored events by event name
OTHER_NAMES = "(other names)"
# A counter of plan violations (of events stored or quarantined) by ``<kind>: <name>``.
VIOLATION = "violation"
OTHER_VIOLATIONS = "(other violations)"
# The service whose calls store events: its refusals are decisions.
TRACKING_SERVICE = "trackd.v1.TrackingService"
MAX_LISTED_IDS = 20


@dataclass(frozen=True)
class RecorderLimits:
    queue: int = 1000  # decisions kept per flush interval
    interval: float = 0.25  # seconds between flushes
    names: int = 100  # distinct event names counted per project per interval


class DecisionSink(Protocol):
    async def record(self, decisions: Sequence[dict[str, Any]],
                     counts: dict[CountKey, int]) -> None: ...


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


class DecisionRecorder:
    """Keeps decisions and counts in memory, bounded, and flushes them in batches."""

    def __init__(self, sink: DecisionSink, limits: RecorderLimits | None = None) -> None:
        self._sink = sink
        self.limits = limits or RecorderLimits()
        self._queue: list[dict[str, Any]] = []
        self._not_recorded: defaultdict[str, int] = defaultdict(int)
        self._counts: defaultdict[CountKey, int] = defaultdict(int)
        self._names: defaultdict[str, set[str]] = defaultdict(set)
        self._violations: defaultdict[str, set[str]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    # --- recording (synchronous: called on a call's path) ----------------------------

    def refused(self, error: ServiceError, call: CallInfo | None) -> None:
        """A TrackingService call of an authenticated caller failed with ``error``."""
        if call is None or not call.project or call.service != TRACKING_SERVICE:
            return
        now = datetime.now(UTC)
        limited = error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        kind = RATE_LIMITED if limited else REFUSED
        # A plan's refusal is still a refused request in the per-minute counts.
        self._count(call.project, now, kind, "" if limited else error.reason or "UNKNOWN")
        field = description = ""
        if isinstance(error, InvalidArgument) and error.violations:
            field = error.violations[0].field
            description = error.violations[0].description
        else:
            description = error.message
        extra: dict[str, Any] = {}
        if isinstance(error, PlanRefusal):
            kind = QUARANTINED
            for breach in error.breaches:
                self._count_violation(call.project, now, breach.kind, breach.event_name)
            listed = error.breaches[:MAX_LISTED_IDS]
            extra = {"violations": [f"{b.field}: {b.message}" for b in listed],
                     "plan_violations": [{"kind": b.kind, "field": b.field,
                                          "message": b.message} for b in listed]}
        self._offer(self._decision(call, now, kind, code=error.code.value[0],
                                   reason=error.reason, field=field,
                                   description=description, **extra))

    def on_refused(self, error: ServiceError) -> None:
        """:meth:`refused` for the call being handled in this task."""
        self.refused(error, current_call())

    def written(self, call: CallInfo | None, docs: Sequence[dict[str, Any]],
                new: Sequence[bool]) -> None:
        """``docs`` (event documents of one call) are durable; ``new[i]``: not a duplicate."""
        if not docs:
            return
        now = datetime.now(UTC)
        project = docs[0]["project_id"]
        duplicates = [doc for doc, fresh in zip(docs, new, strict=True) if not fresh]
        stored = len(docs) - len(duplicates)
        if stored:
            self._count(project, now, STORED, "", stored)
            # Counted by name once per call, each name in the order it first appears,
            # which decides as counting event by event would which names get a counter
            # of their own and which fall under OTHER_NAMES.
            by_name: Counter[str] = Counter()
            for doc, fresh in zip(docs, new, strict=True):
                if fresh:
                    by_name[doc["name"]] += 1
                    for violation in doc.get("plan_violations", ()):
                        self._count_violation(project, now, violation["kind"], doc["name"])
            names = self._names[project]
            for name, count in by_name.items():
                if name not in names and len(names) >= self.limits.names:
                    name = OTHER_NAMES
                else:
                    names.add(name)
                self._count(project, now, NAME, name, count)
        if duplicates:
            self._count(project, now, DUPLICATE, "", len(duplicates))
            listed = duplicates[:MAX_LISTED_IDS]
            self._offer(self._decision(
                call, now, DUPLICATE, project=project, events=len(docs),
                event_ids=[doc["event_id"] for doc in listed],
                event_names=[doc["name"] for doc in listed]))

    def _count_violation(self, project: str, at: datetime, kind: str, name: str) -> None:
        key = f"{kind}: {name}"
        keys = self._violations[project]
        if key not in keys and len(keys) >= self.limits.names:
            key = OTHER_VIOLATIONS
        else:
            keys.add(key)
        self._count(project, at, VIOLATION, key)

    def _count(self, project: str, at: datetime, kind: str, key: str, by: int = 1) -> None:
        self._counts[(project, minute_of(at), kind, key)] += by

    def _offer(self, decision: dict[str, Any]) -> None:
        if len(self._queue) < self.limits.queue:
            self._queue.append(decision)
        else:
            self._not_recorded[decision["project_id"]] += 1

    @staticmethod
    def _decision(call: CallInfo | None, at: datetime, kind: str, *, project: str = "",
                  **fields: Any) -> dict[str, Any]:
        return {"project_id": project or (call.project if call else ""), "at": at,
                "kind": kind, "request_id": call.request_id if call else "",
                "source": call.source if call else metrics.GRPC_SOURCE,
                "method": call.method if call else "",
                "events": call.events if call else 0, **fields}

    # --- flushing ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="trackd-decisions")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.limits.interval)
            await self.flush()

    def take(self) -> tuple[list[dict[str, Any]], dict[CountKey, int]]:
        """What is waiting (the decisions, with a sampling note per project that had
        some not recorded, and the counts), leaving the recorder empty."""
        decisions, self._queue = self._queue, []
        counts, self._counts = dict(self._counts), defaultdict(int)
        not_recorded, self._not_recorded = self._not_recorded, defaultdict(int)
        self._names = defaultdict(set)
        self._violations = defaultdict(set)
        now = datetime.now(UTC)
        for project, count in not_recorded.items():
            decisions.append({"project_id": project, "at": now, "kind": SAMPLING,
                              "not_recorded": count})
        if not_recorded:
            metrics.CONSOLE_DECISIONS.labels("not_recorded").inc(sum(not_recorded.values()))
        return decisions, counts

    async def flush(self) -> None:
        decisions, counts = self.take()
        if not decisions and not counts:
            return
        try:
            await self._sink.record(decisions, counts)
        except StorageError as exc:
            metrics.CONSOLE_DECISIONS.labels("lost").inc(len(decisions))
            log.warning("console decisions not recorded (%d dropped): %s", len(decisions),
                        type(exc).__name__)
            return
        metrics.CONSOLE_DECISIONS.labels("recorded").inc(
            sum(1 for doc in decisions if doc["kind"] != SAMPLING))
