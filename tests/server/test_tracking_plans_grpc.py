"""Tracking plans over real gRPC and a real database: every event judged before it is
stored, the verdict in the answer, block mode's refusal and quarantine, and release."""

from __future__ import annotations

import grpc
import orjson
import pytest
from prometheus_client import generate_latest

from tests.helpers import KeyFactory, stored_events
from tests.scrape import delta, parse
from tests.server.helpers import DOMAIN, RichError, auth, batch, decode, event, rpc_error, track
from tests.server.plan_helpers import KINDS, set_plan
from tests.server.test_track_events import carried, outcome
from trackd.storage import Store
from trackd.v1 import plans_pb2, plans_pb2_grpc, tracking_pb2, tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub
PlanStub = plans_pb2_grpc.TrackingPlanServiceStub


def kind(name: str) -> plans_pb2.PlanViolationKind:
    return plans_pb2.PlanViolationKind.Value(f"PLAN_VIOLATION_KIND_{name.upper()}")  # type: ignore[return-value]


def refused(*violations: tuple[str, str]) -> RichError:
    field, description = violations[0]
    return RichError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {description}",
                     violations=tuple(violations),
                     error_info=("TRACKING_PLAN_VIOLATION", DOMAIN, ()),
                     detail_types=("BadRequest", "ErrorInfo"))


@pytest.fixture
def plans(channel: grpc.aio.Channel) -> PlanStub:
    return PlanStub(channel)


async def test_no_plan_answers_as_before(tracking: Stub, api_key: str, store: Store) -> None:
    response = await tracking.TrackEvent(track(event(event_id="e-1", properties={"plan": 2})),
                                         metadata=auth(api_key))
    assert response.SerializeToString() == \
        tracking_pb2.TrackEventResponse(event_id="e-1").SerializeToString()
    (doc,) = await stored_events(store)
    assert "plan_version" not in doc
    assert "plan_violations" not in doc


@pytest.mark.parametrize("kind_name", sorted(KINDS))
async def test_observe_stores_each_kind_with_its_violation(
        tracking: Stub, api_key: str, store: Store, kind_name: str) -> None:
    version = await set_plan(store)
    name, properties, field, message = KINDS[kind_name]
    before = parse(generate_latest().decode())
    response = await tracking.TrackEvent(
        track(event(name, event_id="e-1", properties=properties)), metadata=auth(api_key))
    assert response == tracking_pb2.TrackEventResponse(
        event_id="e-1", plan_version=version, violations=[plans_pb2.PlanViolation(
            kind=kind(kind_name), field=f"event.{field}", message=message)])
    (doc,) = await stored_events(store)
    assert doc["plan_version"] == version
    assert doc["plan_violations"] == [{"kind": kind_name, "field": field, "message": message}]
    after = parse(generate_latest().decode())
    assert delta(before, after, "trackd_plan_violations_total",
                 kind=kind_name, outcome="stored") == 1


@pytest.mark.parametrize("kind_name", sorted(KINDS))
async def test_block_refuses_and_quarantines_each_kind(
        tracking: Stub, api_key: str, store: Store, kind_name: str) -> None:
    version = await set_plan(store, enforcement="block", unplanned="block")
    name, properties, field, message = KINDS[kind_name]
    error = await rpc_error(tracking.TrackEvent(
        track(event(name, event_id="e-1", properties=properties)), metadata=auth(api_key)))
    assert error == refused((f"event.{field}", message))
    assert await stored_events(store) == []
    (kept,) = await store.quarantine.list("acme")
    assert kept.event["event_id"] == "e-1"
    assert kept.plan_version == version
    assert kept.violations == [{"kind": kind_name, "field": field, "message": message}]
    assert kept.request_id


async def test_a_batch_with_one_violating_event_at_index_3(
        tracking: Stub, api_key: str, store: Store) -> None:
    version = await set_plan(store)
    events = [event(event_id=f"e-{i}", properties={"plan": "pro"}) for i in range(6)]
    events[3] = event(event_id="e-3", properties={"plan": 2})
    response = await tracking.BatchTrack(batch(events), metadata=auth(api_key))
    assert list(response.event_violations) == [tracking_pb2.EventViolations(
        index=3, violations=[plans_pb2.PlanViolation(
            kind=kind("wrong_type"), field="events[3].properties.plan",
            message="must be of type string")])]
    assert response.plan_version == version
    assert response.stored_count == 6
    await set_plan(store, enforcement="block")
    events = [event(event_id=f"f-{i}", properties={"plan": "pro"}) for i in range(6)]
    events[3] = event(event_id="f-3", properties={"plan": 2})
    error = await rpc_error(tracking.BatchTrack(batch(events), metadata=auth(api_key)))
    assert error == refused(("events[3].properties.plan", "must be of type string"))
    assert len(await stored_events(store)) == 6  # the first batch only
    # Refused whole, and kept whole: the other five are released with it.
    assert sorted(q.event["event_id"] for q in await store.quarantine.list("acme")) == \
        [f"f-{i}" for i in range(6)]


async def test_track_events_judges_each_carried_call(
        tracking: Stub, api_key: str, store: Store) -> None:
    await set_plan(store, enforcement="block")
    good = track(event(event_id="g", properties={"plan": "pro"}))
    bad = track(event(event_id="b", properties={"plan": "free"}))
    response = await tracking.TrackEvents(tracking_pb2.TrackEventsRequest(
        calls=[carried(good, auth(api_key)), carried(bad, auth(api_key))]))
    first, second = (outcome(result) for result in response.results)
    assert isinstance(first, tracking_pb2.TrackEventResponse)
    assert first.event_id == "g"
    assert second == refused(("event.properties.plan", 'is invalid: "free" is not one of '
                                                       '"trial", "pro" or "enterprise"'))
    assert [doc["event_id"] for doc in await stored_events(store)] == ["g"]


async def test_quarantine_then_release_twice_stores_once(
        tracking: Stub, plans: PlanStub, make_key: KeyFactory, api_key: str,
        store: Store) -> None:
    manager = auth(await make_key("acme", ("plans:manage",)))
    await set_plan(store, enforcement="block")
    for i in range(3):
        await rpc_error(tracking.TrackEvent(
            track(event(event_id=f"q-{i}", properties={"plan": "free"})),
            metadata=auth(api_key)))
    listing = await plans.ListQuarantinedEvents(
        plans_pb2.ListQuarantinedEventsRequest(), metadata=manager)
    assert listing.total_count == 3
    assert [e.event_id for e in listing.events] == \
        ["q-0", "q-1", "q-2"]
    assert orjson.loads(listing.events[0].properties_json) == {"plan": "free"}
    # Still refused by the current version: nothing moves.
    released = await plans.ReleaseQuarantinedEvents(
        plans_pb2.ReleaseQuarantinedEventsRequest(), metadata=manager)
    assert (released.stored_count, released.still_quarantined_count) == (0, 3)
    # The plan learns the value; a release stores them, a second stores nothing more.
    document = {"enforcement": "block", "events": {"user_signed_up": {"properties": {
        "type": "object", "properties": {"plan": {"enum": ["free", "pro"]}}}}}}
    set_response = await plans.SetTrackingPlan(plans_pb2.SetTrackingPlanRequest(
        plan_json=orjson.dumps(document)), metadata=manager)
    for expected in (3, 0):
        released = await plans.ReleaseQuarantinedEvents(
            plans_pb2.ReleaseQuarantinedEventsRequest(), metadata=manager)
        assert released.stored_count == expected
        assert released.plan_version == set_response.version
    stored = await stored_events(store)
    assert sorted(doc["event_id"] for doc in stored) == ["q-0", "q-1", "q-2"]
    assert all(doc["plan_version"] == set_response.version for doc in stored)
    assert await store.quarantine.count("acme") == 0


async def test_release_after_a_crash_between_store_and_remove_stores_nothing_twice(
        tracking: Stub, plans: PlanStub, make_key: KeyFactory, api_key: str,
        store: Store) -> None:
    manager = auth(await make_key("acme", ("plans:manage",)))
    await set_plan(store, enforcement="block")
    await rpc_error(tracking.TrackEvent(
        track(event(event_id="q", properties={"plan": "free"})), metadata=auth(api_key)))
    (kept,) = await store.quarantine.list("acme")
    await store.events.insert_many([{**kept.event, "plan_version": 9}])  # stored, not removed
    await set_plan(store)  # observe: it passes now
    released = await plans.ReleaseQuarantinedEvents(
        plans_pb2.ReleaseQuarantinedEventsRequest(), metadata=manager)
    assert (released.stored_count, released.duplicate_count) == (0, 1)
    assert len(await stored_events(store)) == 1


async def test_the_service_needs_plans_manage(plans: PlanStub, api_key: str,
                                              make_key: KeyFactory) -> None:
    error = await rpc_error(plans.GetTrackingPlan(plans_pb2.GetTrackingPlanRequest(),
                                                  metadata=auth(api_key)))
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.error_info == ("SCOPE_MISSING", DOMAIN, (("scope", "plans:manage"),))
    default = await make_key("acme", ("track:events", "users:read", "users:write"))
    error = await rpc_error(plans.DropQuarantinedEvents(
        plans_pb2.DropQuarantinedEventsRequest(), metadata=auth(default)))
    assert error.code == grpc.StatusCode.PERMISSION_DENIED


async def test_an_invalid_plan_changes_nothing(plans: PlanStub, make_key: KeyFactory,
                                               store: Store) -> None:
    manager = auth(await make_key("acme", ("plans:manage",)))
    version = await set_plan(store)
    bad = {"events": {"user_signed_up": {"properties": {"type": "objectx"}}}}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await plans.SetTrackingPlan(plans_pb2.SetTrackingPlanRequest(
            plan_json=orjson.dumps(bad)), metadata=manager)
    error = decode(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in error.violations] == ["events.user_signed_up.properties.type"]
    current = await plans.GetTrackingPlan(plans_pb2.GetTrackingPlanRequest(), metadata=manager)
    assert current.version == current.current_version == version
    assert orjson.loads(current.plan_json)["enforcement"] == "observe"


async def test_violation_report(tracking: Stub, plans: PlanStub, make_key: KeyFactory,
                                api_key: str, store: Store) -> None:
    manager = auth(await make_key("acme", ("plans:manage",)))
    await set_plan(store)
    for i in range(3):
        await tracking.TrackEvent(track(event(event_id=f"r-{i}", properties={"plan": i})),
                                  metadata=auth(api_key))
    await tracking.TrackEvent(track(event("signup", event_id="s-1")), metadata=auth(api_key))
    report = await plans.GetViolationReport(plans_pb2.GetViolationReportRequest(),
                                            metadata=manager)
    unplanned, row = report.rows
    assert (unplanned.event_name, unplanned.kind, unplanned.count) == \
        ("signup", kind("unplanned_event"), 1)
    assert (row.event_name, row.kind, row.count) == ("user_signed_up", kind("wrong_type"), 3)
    assert row.example == plans_pb2.PlanViolation(
        kind=kind("wrong_type"), field="properties.plan", message="must be of type string")
    assert row.example_event_id == "r-2"
    assert row.example_request_id


@pytest.mark.parametrize("mode", ["observe", "block"])
@pytest.mark.parametrize("kind_name", sorted(KINDS))
async def test_each_kind_in_batch_track_and_track_events(
        tracking: Stub, api_key: str, store: Store, kind_name: str, mode: str) -> None:
    version = await set_plan(store, enforcement=mode, unplanned="flag" if mode == "observe"
                             else "block")
    name, properties, field, message = KINDS[kind_name]
    violation = plans_pb2.PlanViolation(kind=kind(kind_name), message=message)
    events = [event(event_id="b-0", properties={"plan": "pro"}),
              event(name, event_id="b-1", properties=properties)]
    carried_call = carried(track(event(name, event_id="c-1", properties=properties)),
                           auth(api_key))
    if mode == "observe":
        response = await tracking.BatchTrack(batch(events), metadata=auth(api_key))
        violation.field = f"events[1].{field}"
        assert list(response.event_violations) == [
            tracking_pb2.EventViolations(index=1, violations=[violation])]
        assert response.plan_version == version
        (result,) = (await tracking.TrackEvents(
            tracking_pb2.TrackEventsRequest(calls=[carried_call]))).results
        violation.field = f"event.{field}"
        assert result.response == tracking_pb2.TrackEventResponse(
            event_id="c-1", plan_version=version, violations=[violation])
        assert sorted(doc["event_id"] for doc in await stored_events(store)) == \
            ["b-0", "b-1", "c-1"]
    else:
        error = await rpc_error(tracking.BatchTrack(batch(events), metadata=auth(api_key)))
        assert error == refused((f"events[1].{field}", message))
        (result,) = (await tracking.TrackEvents(
            tracking_pb2.TrackEventsRequest(calls=[carried_call]))).results
        assert outcome(result) == refused((f"event.{field}", message))
        assert await stored_events(store) == []
        assert await store.quarantine.count("acme") == 3


async def test_get_a_version(plans: PlanStub, make_key: KeyFactory, store: Store) -> None:
    manager = auth(await make_key("acme", ("plans:manage",)))
    error = await rpc_error(plans.GetTrackingPlan(plans_pb2.GetTrackingPlanRequest(),
                                                  metadata=manager))
    assert (error.code, error.message) == (grpc.StatusCode.NOT_FOUND,
                                           "the project has no tracking plan")
    await set_plan(store)
    await set_plan(store, enforcement="block")
    first = await plans.GetTrackingPlan(plans_pb2.GetTrackingPlanRequest(version=1),
                                        metadata=manager)
    assert (first.version, first.current_version) == (1, 2)
    assert orjson.loads(first.plan_json)["enforcement"] == "observe"
    error = await rpc_error(plans.GetTrackingPlan(plans_pb2.GetTrackingPlanRequest(version=9),
                                                  metadata=manager))
    assert (error.code, error.message) == (grpc.StatusCode.NOT_FOUND,
                                           "the project has no tracking plan version 9")


async def test_a_resent_event_is_counted_once(tracking: Stub, api_key: str,
                                              store: Store) -> None:
    await set_plan(store)
    before = parse(generate_latest().decode())
    for _ in range(2):
        response = await tracking.TrackEvent(
            track(event(event_id="same", properties={"plan": 2})), metadata=auth(api_key))
        assert [v.field for v in response.violations] == ["event.properties.plan"]
    after = parse(generate_latest().decode())
    assert delta(before, after, "trackd_plan_violations_total",
                 kind="wrong_type", outcome="stored") == 1
    (row,) = await store.plan_violations.report("acme", (await stored_events(store))[0]
                                                ["received_at"])
    assert row.count == 1
