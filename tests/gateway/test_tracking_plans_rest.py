"""Tracking plans through the REST gateway (real server, real HTTP, real database): each
dialect's answer keeps its body and adds ``Trackd-Plan-Violations`` in observe mode, and
refuses in its own error shape in block mode, with the field as the client sent it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import stored_events
from tests.server.plan_helpers import KINDS, set_plan
from trackd.server.auth import ALL_SCOPES
from trackd.storage import Store

Client = TestClient[Any, Any]
HEADER = "Trackd-Plan-Violations"


@dataclass(frozen=True)
class Door:
    """How one dialect sends an event, and how it names a field and refuses."""

    path: str
    headers: Callable[[str], dict[str, str]]
    body: Callable[[str, dict[str, Any]], Any]
    field: Callable[[str], str]
    refusal: Callable[[str, str], tuple[int, Any]]


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


DOORS = {
    "vibefollow": Door(
        "/api/v1/events", _bearer,
        lambda name, props: {"external_user_id": "u-1", "name": name, "properties": props},
        lambda field: field,
        lambda field, what: (422, {"errors": [{"code": "tracking_plan_violation",
                                               "message": f"{field} {what}",
                                               "field": field}]})),
    "flywheel": Door(
        "/v1/events", lambda key: {"Authorization": key, "Auth-Type": "api"},
        lambda name, props: {"event": {"event": name, "user_id": "u-1", "properties": props}},
        lambda field: "event name" if field == "name" else field,
        lambda field, what: (400, {"error": f"Validation failed: {field} {what}",
                                   "code": "VALIDATION_ERROR"})),
    "databuddy": Door(
        "/track", _bearer,
        lambda name, props: {"name": name, "anonymousId": "a-1", "properties": props},
        lambda field: field,
        lambda field, what: (400, {"status": "error",
                                   "message": f"Tracking plan violation: {field} {what}"})),
    "cueflow": Door(
        "/api/v1/events", _bearer,
        lambda name, props: {"externalId": "u-1", "eventKey": name, "properties": props},
        lambda field: "eventKey" if field == "name" else field,
        lambda field, what: (400, {"error": f"Invalid request body: {field} {what}"})),
}
# Headers that differ between any two answers.
_VARYING = {"date", "x-request-id", "ratelimit"}


def _headers(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() not in _VARYING}


async def _keys(http: Client, make_key: Any, *projects: str) -> list[str]:
    """A key per project, whose user u-1 exists (Cueflow tracks only known contacts)."""
    keys = []
    for project in projects:
        key = await make_key(project, ALL_SCOPES)
        response = await http.post("/api/v1/contacts", json={"externalId": "u-1",
                                                              "email": "u1@example.com"},
                                   headers=_bearer(key))
        assert response.status == 201
        keys.append(key)
    return keys


def _same_event(body: bytes) -> bytes:
    """The body without what names one occurrence (Cueflow echoes its id and time)."""
    data = orjson.loads(body)
    if isinstance(data.get("data"), dict):
        data["data"].pop("id", None)
        data["data"].pop("timestamp", None)
        return orjson.dumps(data)
    return body


async def _send(http: Client, door: Door, key: str, name: str,
                properties: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
    response = await http.post(door.path, json=door.body(name, properties),
                               headers=door.headers(key))
    return response.status, _same_event(await response.read()), _headers(response)


@pytest.mark.parametrize("dialect", sorted(DOORS))
async def test_observe_keeps_the_body_and_adds_the_count(
        http: Client, make_key: Any, store: Store, dialect: str) -> None:
    door = DOORS[dialect]
    key, planless = await _keys(http, make_key, "acme", "planless")
    await set_plan(store, "acme")
    good, bad = {"plan": "pro"}, {"plan": 2, "coupon": "x"}
    before_good = await _send(http, door, planless, "user_signed_up", good)
    before_bad = await _send(http, door, planless, "user_signed_up", bad)
    assert HEADER not in before_good[2]
    assert HEADER not in before_bad[2]
    conforming = await _send(http, door, key, "user_signed_up", good)
    violating = await _send(http, door, key, "user_signed_up", bad)
    assert conforming == before_good  # byte for byte, headers too
    assert violating[:2] == before_bad[:2]
    assert violating[2] == {**before_bad[2], HEADER: "2"}
    docs = await stored_events(store, "acme")
    assert [len(doc.get("plan_violations", [])) for doc in docs] == [0, 2]
    assert [doc["plan_version"] for doc in docs] == [1, 1]


@pytest.mark.parametrize("kind_name", sorted(KINDS))
@pytest.mark.parametrize("dialect", sorted(DOORS))
async def test_block_refuses_each_kind_in_the_dialects_shape(
        http: Client, make_key: Any, store: Store, dialect: str, kind_name: str) -> None:
    door = DOORS[dialect]
    (key,) = await _keys(http, make_key, "acme")
    await set_plan(store, "acme", enforcement="block", unplanned="block")
    name, properties, field, message = KINDS[kind_name]
    status, body, _ = await _send(http, door, key, name, properties)
    expected_status, expected_body = door.refusal(door.field(field), message)
    assert (status, orjson.loads(body)) == (expected_status, expected_body)
    assert await stored_events(store) == []
    assert await store.quarantine.count("acme") == 1


async def test_a_batch_with_one_violating_event_at_index_3(
        http: Client, make_key: Any, store: Store) -> None:
    key = await make_key("acme")
    await set_plan(store, "acme")
    events = [{"external_user_id": f"u-{i}", "name": "user_signed_up",
               "properties": {"plan": "pro"}} for i in range(5)]
    events[3]["properties"] = {"plan": 2}
    response = await http.post("/api/v1/events/batch", json={"events": events},
                               headers=_bearer(key))
    assert response.status == 202
    assert await response.json() == {"data": {"accepted": True}}
    assert response.headers[HEADER] == "1"
    await set_plan(store, "acme", enforcement="block")
    response = await http.post("/api/v1/events/batch", json={"events": events},
                               headers=_bearer(key))
    assert response.status == 422
    assert await response.json() == {"errors": [{
        "code": "tracking_plan_violation", "field": "events[3].properties.plan",
        "message": "events[3].properties.plan must be of type string"}]}
    response = await http.post("/track", json=[
        {"name": "user_signed_up", "anonymousId": "a", "properties": e["properties"]}
        for e in events], headers=_bearer(key))
    assert (response.status, await response.json()) == (400, {
        "status": "error",
        "message": "Tracking plan violation: events[3].properties.plan must be of type string"})
    assert len(await stored_events(store)) == 5  # the observed batch only
    assert await store.quarantine.count("acme") == 10


async def test_the_openapi_document_declares_the_header(http: Client) -> None:
    document = await (await http.get("/openapi.json")).json()
    assert document["components"]["headers"][HEADER]["schema"] == {
        "type": "integer", "minimum": 1}
    for path, status in (("/api/v1/events", "201"), ("/api/v1/events", "202"),
                         ("/api/v1/events/batch", "202"), ("/v1/events", "200"),
                         ("/track", "200")):
        headers = document["paths"][path]["post"]["responses"][status]["headers"]
        assert headers[HEADER] == {"$ref": f"#/components/headers/{HEADER}"}, (path, status)


SUCCESS = {"vibefollow": 202, "flywheel": 200, "databuddy": 200, "cueflow": 201}


@pytest.mark.parametrize("kind_name", sorted(KINDS))
@pytest.mark.parametrize("dialect", sorted(DOORS))
async def test_observe_counts_each_kind(
        http: Client, make_key: Any, store: Store, dialect: str, kind_name: str) -> None:
    door = DOORS[dialect]
    (key,) = await _keys(http, make_key, "acme")
    await set_plan(store, "acme")  # observe, unplanned events flagged
    name, properties, field, message = KINDS[kind_name]
    status, _, headers = await _send(http, door, key, name, properties)
    assert (status, headers[HEADER]) == (SUCCESS[dialect], "1")
    (doc,) = await stored_events(store, "acme")
    assert doc["plan_violations"] == [{"kind": kind_name, "field": field, "message": message}]


async def test_the_count_adds_up_over_a_request_sent_as_several_calls(
        http: Client, make_key: Any, store: Store) -> None:
    """Amplitude takes 2,000 events a request; trackd sends them 500 to a BatchTrack call,
    and the header counts every call's violations, not the last one's."""
    key = await make_key("acme", ALL_SCOPES)
    await set_plan(store, "acme")
    events = [{"user_id": f"user-{i}", "event_type": "user_signed_up", "insert_id": f"e-{i}",
               "event_properties": {"plan": "pro"}} for i in range(600)]
    events[3]["event_properties"] = {"plan": 2}  # in the first call
    events[550]["event_properties"] = {"plan": 3}  # in the second
    response = await http.post("/batch", json={"api_key": key, "events": events})
    assert response.status == 200, await response.text()
    assert response.headers[HEADER] == "2"
    assert len(await stored_events(store, "acme")) == 600
