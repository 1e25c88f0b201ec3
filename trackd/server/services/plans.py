"""trackd.v1.TrackingPlanService: a project's tracking plan, its violations report and
its quarantine (the rules are in :mod:`trackd.server.plans`; each RPC needs ``plans:manage``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
import orjson

from trackd.server.auth import SCOPE_PLANS_MANAGE, Authenticator
from trackd.server.errors import InvalidArgument, NotFound, storage_call
from trackd.server.messages import timestamp_message
from trackd.server.plans import manage
from trackd.server.plans.book import PlanBook
from trackd.server.plans.rules import PlanError
from trackd.server.plans.verdict import kind_value, messages
from trackd.server.request_times import duration_field
from trackd.storage import Store
from trackd.storage.indexes import PLAN_VIOLATIONS_TTL_SECONDS
from trackd.storage.quarantine import QuarantinedEvent
from trackd.v1 import plans_pb2, plans_pb2_grpc

T = TypeVar("T")

DEFAULT_REPORT_PERIOD = timedelta(hours=24)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def _quarantined(item: QuarantinedEvent) -> plans_pb2.QuarantinedEvent:
    event = item.event
    return plans_pb2.QuarantinedEvent(
        event_id=event["event_id"], name=event["name"],
        external_user_id=event.get("user_id") or "", anonymous_id=event.get("anonymous_id") or "",
        timestamp=timestamp_message(event["timestamp"]),
        properties_json=orjson.dumps(event.get("properties", {})),
        violations=messages(item.violations), plan_version=item.plan_version,
        request_id=item.request_id, quarantine_time=timestamp_message(item.quarantined_at))


class TrackingPlanService(plans_pb2_grpc.TrackingPlanServiceServicer):
    def __init__(self, auth: Authenticator, store: Store, book: PlanBook) -> None:
        self._auth = auth
        self._store = store
        self._book = book

    async def _project(self, context: grpc.aio.ServicerContext) -> str:
        return (await self._auth.authenticate(context, SCOPE_PLANS_MANAGE)).project_id

    async def _quarantine(self, context: grpc.aio.ServicerContext,
                          action: Callable[[Store, str, str | None], Awaitable[T]],
                          event_name: str) -> T:
        """``action`` on the calling project's quarantined events named ``event_name``
        (empty: of every name)."""
        project_id = await self._project(context)
        return await storage_call(action(self._store, project_id, event_name or None))

    async def SetTrackingPlan(
        self, request: plans_pb2.SetTrackingPlanRequest, context: grpc.aio.ServicerContext
    ) -> plans_pb2.SetTrackingPlanResponse:
        project_id = await self._project(context)
        try:
            document = orjson.loads(request.plan_json)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument.one("plan_json", f"is not JSON: {exc}") from exc
        try:
            record = await storage_call(manage.set_plan(self._store, project_id, document))
        except PlanError as exc:
            raise InvalidArgument.one(exc.path, exc.message) from exc
        self._book.forget(project_id)  # this instance at once; the others by the stream
        return plans_pb2.SetTrackingPlanResponse(version=record.version)

    async def GetTrackingPlan(
        self, request: plans_pb2.GetTrackingPlanRequest, context: grpc.aio.ServicerContext
    ) -> plans_pb2.GetTrackingPlanResponse:
        project_id = await self._project(context)
        current = await storage_call(manage.get_plan(self._store, project_id))
        record = current if not request.version or current is None else \
            await storage_call(manage.get_plan(self._store, project_id, request.version))
        if record is None or current is None:
            what = f" version {request.version}" if request.version and current else ""
            raise NotFound(f"the project has no tracking plan{what}")
        return plans_pb2.GetTrackingPlanResponse(
            version=record.version, plan_json=record.plan_json.encode(),
            create_time=timestamp_message(record.created_at), current_version=current.version)

    async def GetViolationReport(
        self, request: plans_pb2.GetViolationReportRequest, context: grpc.aio.ServicerContext
    ) -> plans_pb2.GetViolationReportResponse:
        project_id = await self._project(context)
        period = duration_field(request.since, "since") if request.HasField("since") \
            else DEFAULT_REPORT_PERIOD
        if not timedelta(0) < period <= timedelta(seconds=PLAN_VIOLATIONS_TTL_SECONDS):
            raise InvalidArgument.one("since", "must be more than 0 and at most 30 days")
        rows = await storage_call(manage.report(self._store, project_id,
                                                datetime.now(UTC) - period))
        return plans_pb2.GetViolationReportResponse(rows=[
            plans_pb2.ViolationReportRow(
                event_name=row.name, kind=kind_value(row.kind), count=row.count,
                last_seen=timestamp_message(row.last_seen),
                example=plans_pb2.PlanViolation(kind=kind_value(row.kind),
                                                field=row.example.field,
                                                message=row.example.message),
                example_request_id=row.example.request_id,
                example_event_id=row.example.event_id)
            for row in rows])

    async def ListQuarantinedEvents(
        self, request: plans_pb2.ListQuarantinedEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> plans_pb2.ListQuarantinedEventsResponse:
        project_id = await self._project(context)
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument.one("page_size", f"must be 0 to {MAX_PAGE_SIZE}")
        items, total = await storage_call(manage.quarantined(
            self._store, project_id, request.event_name or None,
            request.page_size or DEFAULT_PAGE_SIZE))
        return plans_pb2.ListQuarantinedEventsResponse(
            events=[_quarantined(item) for item in items], total_count=total)

    async def ReleaseQuarantinedEvents(
        self, request: plans_pb2.ReleaseQuarantinedEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> plans_pb2.ReleaseQuarantinedEventsResponse:
        released = await self._quarantine(context, manage.release, request.event_name)
        return plans_pb2.ReleaseQuarantinedEventsResponse(
            stored_count=released.stored, duplicate_count=released.duplicate,
            still_quarantined_count=released.still_quarantined,
            plan_version=released.plan_version)

    async def DropQuarantinedEvents(
        self, request: plans_pb2.DropQuarantinedEventsRequest,
        context: grpc.aio.ServicerContext,
    ) -> plans_pb2.DropQuarantinedEventsResponse:
        dropped = await self._quarantine(context, manage.drop, request.event_name)
        return plans_pb2.DropQuarantinedEventsResponse(dropped_count=dropped)
