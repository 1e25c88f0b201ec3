"""The SDK's events judged by the project's tracking plan (real server and database): in
observe mode stored with their violations, in block mode refused (the batch's
DeliveryError names each violation, reason TRACKING_PLAN_VIOLATION) and quarantined."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.client.helpers import Errors
from tests.helpers import stored_events
from tests.server.plan_helpers import set_plan
from trackd.storage import Store
from trackd_client import Client, FieldViolation


async def test_observe_stores_the_sdks_events_with_their_violations(
    target: str, api_key: str, store: Store, errors: Errors, caplog: pytest.LogCaptureFixture,
) -> None:
    version = await set_plan(store)
    client = Client(target, api_key, on_error=errors)
    good = client.track("user_signed_up", user_id="u-1", properties={"plan": "pro", "seats": 3})
    bad = client.track("user_signed_up", user_id="u-1", properties={"plan": 2})
    assert await asyncio.to_thread(client.flush, 30)
    await asyncio.to_thread(client.close)
    assert errors == []
    docs = {doc["event_id"]: doc for doc in await stored_events(store)}
    assert docs[good]["plan_version"] == docs[bad]["plan_version"] == version
    assert "plan_violations" not in docs[good]
    assert docs[bad]["plan_violations"] == [
        {"kind": "wrong_type", "field": "properties.plan", "message": "must be of type string"}]
    assert client.stats().failed == 0
    assert [r.getMessage() for r in caplog.records if r.name == "trackd_client"] == [
        f"trackd_client: 1 of 2 events of a batch break the tracking plan (version {version}) "
        "and were stored with their violations; first: events[1].properties.plan must be "
        "of type string"]


async def test_block_refuses_the_batch_and_quarantines_it(
    target: str, api_key: str, store: Store, errors: Errors,
) -> None:
    await set_plan(store, enforcement="block")
    client = Client(target, api_key, on_error=errors)
    ids = [client.track("user_signed_up", user_id="u-1", properties={"plan": "pro"}),
           client.track("user_signed_up", user_id="u-1", properties={"plan": "free"})]
    await asyncio.to_thread(client.flush, 30)
    await asyncio.to_thread(client.close)
    (error,) = errors
    assert (error.code, error.reason, error.ids) == (
        grpc.StatusCode.INVALID_ARGUMENT, "TRACKING_PLAN_VIOLATION", tuple(ids))
    assert error.field_violations == (FieldViolation(
        "events[1].properties.plan",
        'is invalid: "free" is not one of "trial", "pro" or "enterprise"'),)
    assert await stored_events(store) == []
    assert sorted(q.event["event_id"] for q in await store.quarantine.list("acme")) == \
        sorted(ids)
