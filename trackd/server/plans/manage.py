"""Managing a project's tracking plan: setting a version, reading one, the violations
report, and the quarantine's release and drop. The TrackingPlanService and the CLI
(``trackd plans``) both call these, so each rule is in one place.

A release judges quarantined events against the version current when it runs (read
from the database, not a cache) and stores those it does not refuse with their own
event ids, then removes them from the quarantine: a second release, or one that
overlaps another, finds them stored (duplicates) and stores nothing twice. One release
handles at most :data:`MAX_RELEASE_EVENTS` events; run it again for more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from trackd.server.plans.rules import Plan, blocked, check_plan, compile_plan, judge
from trackd.server.plans.verdict import as_dicts
from trackd.storage import StorageError, Store
from trackd.storage.plan_violations import ViolationSummary
from trackd.storage.plans import PlanRecord
from trackd.storage.quarantine import QuarantinedEvent

MAX_RELEASE_EVENTS = 10_000


@dataclass(frozen=True)
class Released:
    """What a release did."""

    stored: int
    duplicate: int
    still_quarantined: int
    plan_version: int


async def set_plan(store: Store, project_id: str, document: Any) -> PlanRecord:
    """Check ``document`` whole (raises :class:`~trackd.server.plans.rules.PlanError`, changing
    nothing) and store it as the project's next version."""
    if not project_id:
        raise ValueError("a project name is required")
    checked = check_plan(document)
    return await store.plans.insert_next(project_id, orjson.dumps(checked).decode())


async def get_plan(store: Store, project_id: str, version: int = 0) -> PlanRecord | None:
    """The current version (``version`` 0), or that version; None when there is none."""
    if version:
        return await store.plans.get(project_id, version)
    return await store.plans.current(project_id)


async def current_plan(store: Store, project_id: str) -> Plan | None:
    record = await store.plans.current(project_id)
    return None if record is None else compile_plan(record.version,
                                                     orjson.loads(record.plan_json))


async def report(store: Store, project_id: str, since: datetime) -> list[ViolationSummary]:
    return await store.plan_violations.report(project_id, since)


async def quarantined(store: Store, project_id: str, name: str | None = None,
                      limit: int = 100) -> tuple[list[QuarantinedEvent], int]:
    """Up to ``limit`` quarantined events, oldest first, and how many there are."""
    return (await store.quarantine.list(project_id, name, limit),
            await store.quarantine.count(project_id, name))


async def release(store: Store, project_id: str, name: str | None = None) -> Released:
    plan = await current_plan(store, project_id)
    items = await store.quarantine.list(project_id, name, MAX_RELEASE_EVENTS)
    passing: list[dict[str, Any]] = []
    still = 0
    for item in items:
        doc = dict(item.event)
        doc.pop("plan_violations", None)
        doc.pop("plan_version", None)
        if plan is not None:
            violations = judge(plan, doc["name"], doc["properties"])
            if blocked(plan, violations):
                still += 1
                continue
            doc["plan_version"] = plan.version
            if violations:
                doc["plan_violations"] = as_dicts(violations)
        passing.append(doc)
    duplicate = 0
    if passing:
        outcome = await store.events.insert_many(passing)
        if outcome.failed:
            raise StorageError(f"the database refused a released event: "
                               f"{next(iter(outcome.failed.values()))}")
        duplicate = len(outcome.duplicate)
        await store.quarantine.remove(project_id, [doc["event_id"] for doc in passing])
    return Released(len(passing) - duplicate, duplicate, still,
                    0 if plan is None else plan.version)


async def drop(store: Store, project_id: str, name: str | None = None) -> int:
    return await store.quarantine.drop(project_id, name)
