"""trackd.v1.DecisionService: a project's decisions as they are recorded, and its last
hour per minute (what :mod:`trackd.server.decisions` records, read through
:mod:`trackd.storage.decisions`). Scope ``events:read``."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from trackd.server import decisions as kinds
from trackd.server.auth import SCOPE_EVENTS_READ, Authenticator
from trackd.server.errors import ServiceError, Unavailable, storage_call, to_status
from trackd.server.messages import timestamp_message
from trackd.server.plans.verdict import messages
from trackd.server.request_times import timestamp_field
from trackd.storage import StorageError, StorageUnavailable
from trackd.storage.decisions import DecisionLog
from trackd.storage.event_feed import StreamsUnsupported
from trackd.v1 import decisions_pb2, decisions_pb2_grpc

READ_BATCH = 500
# Decisions replayed at most when a stream starts from a time.
MAX_REPLAY = 500
MINUTES = 60
TOP = 10
KINDS: dict[str, int] = {
    kinds.REFUSED: decisions_pb2.DECISION_KIND_REFUSED,
    kinds.DUPLICATE: decisions_pb2.DECISION_KIND_DUPLICATE,
    kinds.RATE_LIMITED: decisions_pb2.DECISION_KIND_RATE_LIMITED,
    kinds.QUARANTINED: decisions_pb2.DECISION_KIND_QUARANTINED,
}


def response_of(doc: dict[str, Any]) -> decisions_pb2.WatchDecisionsResponse:
    """The stream's item for a stored decision (or sampling note)."""
    if doc["kind"] == kinds.SAMPLING:
        return decisions_pb2.WatchDecisionsResponse(sampling=decisions_pb2.DecisionSampling(
            not_recorded=doc.get("not_recorded", 0), time=timestamp_message(doc["at"])))
    return decisions_pb2.WatchDecisionsResponse(decision=decisions_pb2.Decision(
        id=doc.get("id", ""), time=timestamp_message(doc["at"]),
        kind=KINDS.get(doc["kind"], decisions_pb2.DECISION_KIND_UNSPECIFIED),  # type: ignore[arg-type]
        request_id=doc.get("request_id", ""), source=doc.get("source", ""),
        method=doc.get("method", ""), code=doc.get("code", 0), reason=doc.get("reason", ""),
        field=doc.get("field", ""), description=doc.get("description", ""),
        events=doc.get("events", 0), event_ids=doc.get("event_ids", []),
        event_names=doc.get("event_names", []), violations=doc.get("violations", []),
        plan_violations=messages(doc.get("plan_violations", []))))


def overview(counts: list[dict[str, Any]], last_minute: datetime
             ) -> decisions_pb2.GetOverviewResponse:
    """Sixty minutes ending with ``last_minute`` from the counters' documents."""
    first = last_minute - timedelta(minutes=MINUTES - 1)
    minutes = {first + timedelta(minutes=i): decisions_pb2.MinuteCounts(
        minute=timestamp_message(first + timedelta(minutes=i))) for i in range(MINUTES)}
    refused: defaultdict[datetime, Counter[str]] = defaultdict(Counter)
    names: Counter[str] = Counter()
    violations: Counter[str] = Counter()
    for doc in counts:
        minute = doc["minute"].astimezone(UTC)
        row = minutes.get(minute)
        if row is None:
            continue
        kind, key, count = doc["kind"], doc["key"], doc["count"]
        if kind == kinds.STORED:
            row.stored += count
        elif kind == kinds.DUPLICATE:
            row.duplicates += count
        elif kind == kinds.RATE_LIMITED:
            row.rate_limited += count
        elif kind == kinds.REFUSED:
            refused[minute][key] += count
        elif kind == kinds.NAME:
            names[key] += count
        elif kind == kinds.VIOLATION:
            violations[key] += count
    for minute, reasons in refused.items():
        minutes[minute].refused.extend(
            decisions_pb2.NamedCount(name=name, count=count)
            for name, count in sorted(reasons.items()))
    return decisions_pb2.GetOverviewResponse(
        minutes=list(minutes.values()),
        top_event_names=[decisions_pb2.NamedCount(name=name, count=count)
                         for name, count in names.most_common(TOP)],
        top_violations=[decisions_pb2.NamedCount(name=name, count=count)
                        for name, count in sorted(violations.items(),
                                                  key=lambda item: (-item[1], item[0]))[:TOP]])


class DecisionService(decisions_pb2_grpc.DecisionServiceServicer):
    def __init__(self, auth: Authenticator, log: DecisionLog) -> None:
        self._auth = auth
        self._log = log

    async def GetOverview(
        self, request: decisions_pb2.GetOverviewRequest, context: grpc.aio.ServicerContext
    ) -> decisions_pb2.GetOverviewResponse:
        project = (await self._auth.authenticate(context, SCOPE_EVENTS_READ)).project_id
        last = kinds.minute_of(datetime.now(UTC))
        counts = await storage_call(
            self._log.counts(project, last - timedelta(minutes=MINUTES - 1)))
        return overview(counts, last)

    async def WatchDecisions(
        self, request: decisions_pb2.WatchDecisionsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[decisions_pb2.WatchDecisionsResponse]:
        try:
            project = (await self._auth.authenticate(context, SCOPE_EVENTS_READ)).project_id
            since = timestamp_field(request.since, "since") if request.HasField("since") \
                else None
            stream = self._log.stream(project)
            try:
                await stream.open()
            except StreamsUnsupported as exc:
                raise Unavailable("WatchDecisions needs a database with change streams (a "
                                  "replica set); this one has none") from exc
            except StorageUnavailable as exc:
                raise Unavailable("the database is unavailable; retry later") from exc
        except ServiceError as exc:
            await context.abort_with_status(to_status(exc))
            return
        try:
            # Key and scope accepted, stream open: said at once (as Subscribe does), so
            # the console's live stream knows it before the first decision.
            await context.send_initial_metadata(())
            seen: set[str] = set()
            if since is not None:
                # Opened first, read second: a decision recorded in between comes twice,
                # once from each; the ids tell them apart.
                for doc in await storage_call(self._log.since(project, since, MAX_REPLAY)):
                    seen.add(doc["id"])
                    yield response_of(doc)
            while True:
                try:
                    batch = await stream.next_batch(READ_BATCH)
                except StorageError as exc:
                    raise Unavailable("the database is unavailable; watch again") from exc
                for doc in batch:
                    if seen and doc["id"] in seen:
                        seen.discard(doc["id"])
                        continue
                    yield response_of(doc)
        except ServiceError as exc:
            await context.abort_with_status(to_status(exc))
        finally:
            await stream.close()
