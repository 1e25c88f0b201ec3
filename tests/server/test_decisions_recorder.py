"""The console's decision recorder (trackd/server/decisions.py) on the real database: what a
flush writes, its bounds (the queue, the names counted), the sampling note when the
queue was full, exact counts whatever was sampled, and a flush the database refuses is
dropped without raising."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from trackd.server import metrics
from trackd.server.decisions import (
    OTHER_NAMES,
    OTHER_VIOLATIONS,
    DecisionRecorder,
    RecorderLimits,
    minute_of,
)
from trackd.server.errors import FieldViolation, InvalidArgument, PermissionDenied
from trackd.server.observability import CallInfo
from trackd.server.rate_limit_policy import RateLimit, RateLimited
from trackd.storage import Store
from trackd.storage.indexes import CONSOLE_COUNTS, DECISIONS
from trackd.v1 import errors_pb2


def call(project: str = "acme", request_id: str = "req-1", source: str = "vibefollow",
         events: int = 1) -> CallInfo:
    return CallInfo(service="trackd.v1.TrackingService", method="TrackEvent",
                    request_id=request_id, source=source, bytes_in=10, project=project,
                    events=events)


def invalid() -> InvalidArgument:
    return InvalidArgument([FieldViolation("event.name", "must be at most 512 characters"),
                            FieldViolation("event.anonymous_id", "is too long")])


def docs(*names: str, project: str = "acme") -> list[dict[str, Any]]:
    return [{"project_id": project, "name": name, "event_id": f"e-{i}"}
            for i, name in enumerate(names)]


async def decisions(store: Store, project: str = "acme") -> list[dict[str, Any]]:
    return [doc async for doc in store.db[DECISIONS].find(
        {"project_id": project}, {"_id": 0, "at": 0}).sort("at", 1)]


async def counts(store: Store, project: str = "acme") -> dict[tuple[str, str], int]:
    return {(str(doc["kind"]), str(doc["key"])): int(doc["count"])  # type: ignore[call-overload]
            async for doc in store.db[CONSOLE_COUNTS].find({"project_id": project})}


async def test_a_refusal_keeps_what_it_names_and_nothing_else(store: Store) -> None:
    recorder = DecisionRecorder(store.decisions)
    recorder.refused(invalid(), call())
    recorder.refused(PermissionDenied("this key may not track events"), call(request_id="r2"))
    await recorder.flush()
    assert await decisions(store) == [
        {"project_id": "acme", "kind": "refused", "request_id": "req-1",
         "source": "vibefollow", "method": "TrackEvent", "events": 1, "code": 3,
         "reason": "INVALID_ARGUMENT", "field": "event.name",
         "description": "must be at most 512 characters"},
        {"project_id": "acme", "kind": "refused", "request_id": "r2",
         "source": "vibefollow", "method": "TrackEvent", "events": 1, "code": 7,
         "reason": "PERMISSION_DENIED", "field": "",
         "description": "this key may not track events"}]
    assert await counts(store) == {("refused", "INVALID_ARGUMENT"): 1,
                                   ("refused", "PERMISSION_DENIED"): 1}


async def test_rate_limited_and_unauthenticated_and_other_services(store: Store) -> None:
    recorder = DecisionRecorder(store.decisions)
    recorder.refused(RateLimited(RateLimit(10, 1.0), 1), call())
    recorder.refused(invalid(), call(project=""))  # no caller: no project to show it to
    other = CallInfo(service="trackd.v1.UserService", method="UpsertUser", request_id="x",
                     source="grpc", bytes_in=1, project="acme")
    recorder.refused(invalid(), other)
    recorder.refused(invalid(), None)
    await recorder.flush()
    (limited,) = await decisions(store)
    assert (limited["kind"], limited["code"], limited["reason"]) == (
        "rate_limited", grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], "RATE_LIMITED")
    assert await counts(store) == {("rate_limited", ""): 1}


async def test_written_counts_stored_and_names_and_records_duplicates(store: Store) -> None:
    recorder = DecisionRecorder(store.decisions)
    batch = docs("signup", "signup", "login")
    recorder.written(call(request_id="b1", events=3), batch, [True, False, True])
    await recorder.flush()
    assert await decisions(store) == [
        {"project_id": "acme", "kind": "duplicate", "request_id": "b1",
         "source": "vibefollow", "method": "TrackEvent", "events": 3,
         "event_ids": ["e-1"], "event_names": ["signup"]}]
    assert await counts(store) == {("stored", ""): 2, ("duplicate", ""): 1,
                                   ("name", "signup"): 1, ("name", "login"): 1}
    # Counters add up across flushes (and instances: $inc upserts).
    recorder.written(call(), docs("signup"), [True])
    await recorder.flush()
    assert (await counts(store))[("name", "signup")] == 2


async def test_past_the_queue_decisions_are_counted_and_the_stream_told(store: Store) -> None:
    recorder = DecisionRecorder(store.decisions, RecorderLimits(queue=3))
    before = metrics.CONSOLE_DECISIONS.labels("not_recorded")._value.get()
    for i in range(10):
        recorder.refused(invalid(), call(request_id=f"r{i}"))
    recorder.refused(invalid(), call(project="other", request_id="o1"))
    await recorder.flush()
    kept = await decisions(store)
    assert [doc.get("request_id") for doc in kept if doc["kind"] == "refused"] == \
        ["r0", "r1", "r2"]
    assert [doc for doc in kept if doc["kind"] == "sampling"] == [
        {"project_id": "acme", "kind": "sampling", "not_recorded": 7}]
    assert await decisions(store, "other") == [
        {"project_id": "other", "kind": "sampling", "not_recorded": 1}]
    # Counted exactly, sampled or not.
    assert await counts(store) == {("refused", "INVALID_ARGUMENT"): 10}
    assert metrics.CONSOLE_DECISIONS.labels("not_recorded")._value.get() - before == 8
    # The next interval starts with an empty queue.
    recorder.refused(invalid(), call(request_id="next"))
    await recorder.flush()
    assert (await decisions(store))[-1]["request_id"] == "next"


async def test_event_names_counted_per_interval_are_bounded(store: Store) -> None:
    recorder = DecisionRecorder(store.decisions, RecorderLimits(names=2))
    recorder.written(call(), docs("a", "b", "c", "d", "a"), [True] * 5)
    await recorder.flush()
    assert await counts(store) == {("stored", ""): 5, ("name", "a"): 2, ("name", "b"): 1,
                                   ("name", OTHER_NAMES): 2}


async def test_violations_counted_per_interval_are_bounded(store: Store) -> None:
    """Stored events' plan violations count per ``<kind>: <name>``, under the names cap;
    a duplicate's count nothing (it was counted when it was stored)."""
    recorder = DecisionRecorder(store.decisions, RecorderLimits(names=2))
    written = docs("a", "b", "c", "a")
    for doc in written:
        doc["plan_violations"] = [{"kind": "wrong_type", "field": "properties.x",
                                   "message": "must be of type string"}]
    written[1]["plan_violations"].append({"kind": "missing_required", "field": "properties.y",
                                          "message": "is required by the tracking plan"})
    recorder.written(call(events=4), written, [True, True, True, False])
    await recorder.flush()
    assert await counts(store) == {
        ("stored", ""): 3, ("duplicate", ""): 1, ("name", "a"): 1, ("name", "b"): 1,
        ("name", OTHER_NAMES): 1, ("violation", "wrong_type: a"): 1,
        ("violation", "wrong_type: b"): 1, ("violation", OTHER_VIOLATIONS): 2}


async def test_counters_are_per_minute(store: Store) -> None:
    recorder = DecisionRecorder(store.decisions)
    recorder.written(call(), docs("a"), [True])
    await recorder.flush()
    (doc,) = [doc async for doc in store.db[CONSOLE_COUNTS].find({"kind": "stored"})]
    now = datetime.now(UTC)
    minute = doc["minute"]
    assert isinstance(minute, datetime)
    assert minute in (minute_of(now), minute_of(now - timedelta(minutes=1)))
    assert (minute.second, minute.microsecond) == (0, 0)


async def test_a_flush_the_database_refuses_is_dropped(dead_store: Store) -> None:
    recorder = DecisionRecorder(dead_store.decisions)
    before = metrics.CONSOLE_DECISIONS.labels("lost")._value.get()
    recorder.refused(invalid(), call())
    recorder.refused(invalid(), call())
    await recorder.flush()  # does not raise
    assert metrics.CONSOLE_DECISIONS.labels("lost")._value.get() - before == 2
    assert recorder.take() == ([], {})  # nothing kept to retry


async def test_an_invalid_argument_with_its_own_reason(store: Store) -> None:
    recorder = DecisionRecorder(store.decisions)
    recorder.refused(InvalidArgument.one("", "could not be decoded",
                                         reason=errors_pb2.ERROR_REASON_MALFORMED_REQUEST),
                     call())
    await recorder.flush()
    (doc,) = await decisions(store)
    assert (doc["reason"], doc["field"], doc["description"]) == (
        "MALFORMED_REQUEST", "", "could not be decoded")
