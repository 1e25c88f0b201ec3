"""The verdict on a request's events: judged against the project's current plan once per
request, before they are stored.

:meth:`PlanJudge.judge` marks each event document with the plan version (and its
violations, if any) so it is stored with them. When the plan refuses any event (block
mode, or a blocked unplanned event), the whole request is refused, as any invalid
request is, and every event of it is quarantined first, violating or not (a refused
batch's other events would otherwise be lost; a release stores them with the rest):
the refusal is INVALID_ARGUMENT with a BadRequest field violation per violation and
ErrorInfo reason ``TRACKING_PLAN_VIOLATION`` (a :class:`PlanRefusal`, which the
console's decision recorder records as a ``quarantined`` decision).
:meth:`PlanJudge.record` then counts the newly stored events' violations and logs them
for the report (one insert, only for a request with violations); a failed log write is
logged, never the call's failure: the events carry their own violations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trackd.server import metrics
from trackd.server.errors import FieldViolation, InvalidArgument, storage_call
from trackd.server.observability import current_call
from trackd.server.plans.book import PlanBook
from trackd.server.plans.rules import KINDS, Violation, blocked, judge
from trackd.storage import StorageError
from trackd.storage.plan_violations import ViolationEntry, ViolationLog
from trackd.storage.quarantine import QuarantinedEvent, QuarantineRepository
from trackd.v1 import errors_pb2, plans_pb2

log = logging.getLogger(__name__)

TRACKING_PLAN_VIOLATION = errors_pb2.ERROR_REASON_TRACKING_PLAN_VIOLATION


@dataclass
class Verdict:
    """A request's events judged: per event (in request order), its violations."""

    plan_version: int
    violations: list[list[Violation]]
    paths: Sequence[str]


def as_dicts(violations: Sequence[Violation]) -> list[dict[str, str]]:
    return [{"kind": v.kind, "field": v.field, "message": v.message} for v in violations]


_KIND_VALUES = {kind: plans_pb2.PlanViolationKind.Value("PLAN_VIOLATION_KIND_" + kind.upper())
                for kind in KINDS}


def kind_value(kind: str) -> plans_pb2.PlanViolationKind:
    return _KIND_VALUES[kind]  # type: ignore[return-value]  # the stubs type Value() as int


def messages(violations: Sequence[Violation] | Sequence[dict[str, str]],
             prefix: str = "") -> list[plans_pb2.PlanViolation]:
    """Violations as the API's messages, their fields under ``prefix`` (``event``)."""
    out = []
    for v in violations:
        kind, field, message = (v.kind, v.field, v.message) if isinstance(v, Violation) \
            else (v["kind"], v["field"], v["message"])
        out.append(plans_pb2.PlanViolation(
            kind=kind_value(kind), field=f"{prefix}.{field}" if prefix else field,
            message=message))
    return out


@dataclass(frozen=True)
class Breach:
    """One violation of a refused request, for the console: the event's name, the
    violation's kind, its field as the request names it, and the plan's message."""

    event_name: str
    kind: str
    field: str
    message: str


class PlanRefusal(InvalidArgument):
    """The refusal of a request the plan blocked, its events quarantined: an
    INVALID_ARGUMENT (``TRACKING_PLAN_VIOLATION``) that also keeps each violation's kind
    and event name, so the decision recorder records a ``quarantined`` decision."""

    def __init__(self, breaches: Sequence[Breach]) -> None:
        self.breaches = list(breaches)
        super().__init__([FieldViolation(b.field, b.message) for b in self.breaches],
                         reason=TRACKING_PLAN_VIOLATION)


def _request_id() -> str:
    call = current_call()
    return call.request_id if call is not None else ""


class PlanJudge:
    def __init__(self, book: PlanBook, quarantine: QuarantineRepository,
                 violations: ViolationLog) -> None:
        self.book = book
        self._quarantine = quarantine
        self._log = violations

    async def judge(self, project_id: str, docs: list[dict[str, Any]],
                    paths: Sequence[str]) -> Verdict | None:
        """Judge ``docs`` (``paths[i]`` is ``docs[i]``'s path in the request: ``event``,
        ``events[3]``); None when the project has no plan. Raises InvalidArgument
        (``TRACKING_PLAN_VIOLATION``) after quarantining them when the plan refuses one."""
        plan = await self.book.current(project_id)
        if plan is None:
            return None
        found = [judge(plan, doc["name"], doc["properties"]) for doc in docs]
        for doc, violations in zip(docs, found, strict=True):
            doc["plan_version"] = plan.version
            if violations:
                doc["plan_violations"] = as_dicts(violations)
        verdict = Verdict(plan.version, found, paths)
        if any(blocked(plan, violations) for violations in found):
            await self._refuse(project_id, docs, verdict)
        return verdict

    async def _refuse(self, project_id: str, docs: list[dict[str, Any]],
                      verdict: Verdict) -> None:
        now = datetime.now(UTC)
        request_id = _request_id()
        await storage_call(self._quarantine.put([
            QuarantinedEvent(doc, as_dicts(violations), verdict.plan_version, request_id, now)
            for doc, violations in zip(docs, verdict.violations, strict=True)]))
        await self._note(project_id, docs, verdict, blocked=True)
        raise PlanRefusal([
            Breach(doc["name"], v.kind, f"{path}.{v.field}", v.message)
            for doc, path, violations in zip(docs, verdict.paths, verdict.violations,
                                             strict=True)
            for v in violations])

    async def record(self, project_id: str, docs: list[dict[str, Any]],
                     verdict: Verdict | None, new: Sequence[bool]) -> None:
        """Count and log the violations of events just stored (``new[i]``: ``docs[i]`` was
        stored by this request, not already: a retry counts nothing twice)."""
        if verdict is not None and any(verdict.violations):
            await self._note(project_id, docs, verdict, blocked=False, only=new)

    async def _note(self, project_id: str, docs: list[dict[str, Any]], verdict: Verdict,
                    *, blocked: bool, only: Sequence[bool] | None = None) -> None:
        outcome = "blocked" if blocked else "stored"
        now = datetime.now(UTC)
        request_id = _request_id()
        entries = []
        for index, (doc, violations) in enumerate(zip(docs, verdict.violations, strict=True)):
            if only is not None and not only[index]:
                continue
            for v in violations:
                metrics.count_plan_violations(v.kind, outcome)
                entries.append(ViolationEntry(
                    project_id, doc["name"], v.kind, v.field, v.message, doc["event_id"],
                    request_id, now, verdict.plan_version, blocked))
        try:
            await self._log.record(entries)
        except StorageError as exc:  # the events' own copies stay: only the report misses them
            log.warning("could not log %d plan violations for the report: %s",
                        len(entries), exc)
