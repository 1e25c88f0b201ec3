"""VibeFollow users, users/bulk and canonical events over real HTTP, real gRPC, real database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import KeyFactory, stored_events, stored_users
from trackd.server.auth import ALL_SCOPES
from trackd.storage import Store
from trackd.v1 import users_pb2, users_pb2_grpc

Client = TestClient[Any, Any]
ACCEPTED = {"data": {"accepted": True}}
IDEMPOTENCY_KEY = "7b6c7e9e-2c2d-4a8d-9d3a-4f3d2c1b0a99"


def headers(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **extra}


def error(field: str, description: str, code: str = "validation_failed") -> dict[str, Any]:
    return {"errors": [{"code": code, "message": f"{field} {description}", "field": field}]}


ADA = {
    "external_user_id": "usr_42",
    "email": "ada@example.com",
    "traits": {"name": "Ada Lovelace", "plan": "trial", "signupDate": "2024-01-15",
               "company": "Analytical Engines", "role": "admin", "workspaceId": "ws_1",
               "seats": 3},
}


# --- POST /api/v1/users ---------------------------------------------------------------------


async def test_upsert_stores_known_traits_as_profile_fields(
    http: Client, key: str, store: Store
) -> None:
    resp = await http.post("/api/v1/users", json=ADA, headers=headers(key))
    assert resp.status == 202
    assert await resp.json() == ACCEPTED
    (user,) = await stored_users(store)
    assert user["external_id"] == "usr_42"
    assert user["email"] == "ada@example.com"
    assert user["emails"] == ["ada@example.com"]
    assert user["name"] == "Ada Lovelace"
    assert user["plan"] == "trial"
    assert user["company"] == "Analytical Engines"
    assert user["role"] == "admin"
    assert user["signed_up_at"] == datetime(2024, 1, 15, tzinfo=UTC)
    assert user["traits"] == {"workspaceId": "ws_1", "seats": 3}


async def test_reupsert_updates_in_place(http: Client, key: str, store: Store) -> None:
    assert (await http.post("/api/v1/users", json=ADA, headers=headers(key))).status == 202
    (before,) = await stored_users(store)
    change = {"external_user_id": "usr_42",
              "traits": {"plan": "pro", "seats": 5, "workspaceId": None, "tier": "gold"}}
    resp = await http.post("/api/v1/users", json=change, headers=headers(key))
    assert resp.status == 202
    (after,) = await stored_users(store)
    assert after["plan"] == "pro"
    assert after["name"] == "Ada Lovelace"  # absent fields stay
    assert after["email"] == "ada@example.com"
    assert after["traits"] == {"seats": 5, "tier": "gold"}  # a null trait is removed
    assert after["created_at"] == before["created_at"]


@pytest.mark.parametrize(("trait", "value", "expected"), [
    ("signupDate", "2024-01-15T10:30:00Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
    ("signupDate", "2024-01-15T10:30:00+02:00", datetime(2024, 1, 15, 8, 30, tzinfo=UTC)),
    ("signupDate", "2024-01-15T10:30:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
    ("signup_date", "2024-02-01", datetime(2024, 2, 1, tzinfo=UTC)),
])
async def test_signup_date_accepts_dates_and_date_times(
    http: Client, key: str, store: Store, trait: str, value: str, expected: datetime
) -> None:
    body = {"external_user_id": "u1", "traits": {trait: value}}
    assert (await http.post("/api/v1/users", json=body, headers=headers(key))).status == 202
    (user,) = await stored_users(store)
    assert user["signed_up_at"] == expected
    assert "traits" not in user


@pytest.mark.parametrize(("body", "field", "description"), [
    ({"traits": {}}, "external_user_id", "is required"),
    ({"external_user_id": ""}, "external_user_id", "must not be empty"),
    ({"external_user_id": 42}, "external_user_id", "must be a string"),
    ({"external_user_id": "u" * 257}, "external_user_id", "must be at most 256 characters"),
    ({"external_user_id": "u", "email": 5}, "email", "must be a string"),
    ({"external_user_id": "u", "email": "not-an-email"}, "email", "must be an email address"),
    ({"external_user_id": "u", "traits": []}, "traits", "must be an object"),
    ({"external_user_id": "u", "traits": {"signupDate": "last tuesday"}}, "traits.signupDate",
     "must be an ISO-8601 date or date-time"),
    ({"external_user_id": "u", "traits": {"signupDate": 1705314600000}}, "traits.signupDate",
     "must be an ISO-8601 date or date-time"),
    ({"external_user_id": "u", "traits": {"plan": 3}}, "traits.plan", "must be a string"),
    ({"external_user_id": "u", "traits": {"name": "n" * 1025}}, "traits.name",
     "must be at most 1024 characters"),
    ({"external_user_id": "u", "traits": {"big": 2**60}}, "traits.big",
     "is an integer beyond ±2^53; send it as a string to keep every digit"),
    ({"external_user_id": "u", "traits": {f"k{i}": i for i in range(101)}}, "traits",
     "at most 100 trait keys are allowed"),
])
async def test_invalid_user_is_422_naming_the_field(
    http: Client, key: str, store: Store, body: dict[str, Any], field: str, description: str
) -> None:
    resp = await http.post("/api/v1/users", json=body, headers=headers(key))
    assert resp.status == 422
    assert await resp.json() == error(field, description)
    assert await stored_users(store) == []


async def test_users_auth_errors(http: Client, make_key: KeyFactory, store: Store) -> None:
    resp = await http.post("/api/v1/users", json=ADA)
    assert resp.status == 401
    assert await resp.json() == {"errors": [{
        "code": "unauthorized",
        "message": "missing or malformed Authorization header: expected 'Bearer <key>'"}]}
    track_only = await make_key(scopes=("track:events",))
    for path, body in (("/api/v1/users", ADA), ("/api/v1/users/bulk", {"users": [ADA]})):
        resp = await http.post(path, json=body, headers=headers(track_only))
        assert resp.status == 403
        assert await resp.json() == {"errors": [
            {"code": "forbidden", "message": "API key missing users:write scope"}]}
    assert await stored_users(store) == []


async def test_upsert_idempotency(http: Client, key: str, store: Store) -> None:
    hdrs = headers(key, **{"Idempotency-Key": IDEMPOTENCY_KEY})
    assert (await http.post("/api/v1/users", json=ADA, headers=hdrs)).status == 202
    (first,) = await stored_users(store)
    resp = await http.post("/api/v1/users", json=ADA, headers=hdrs)
    assert resp.status == 202
    assert await resp.json() == ACCEPTED
    assert await stored_users(store) == [first]  # replayed: not even updated_at moved
    resp = await http.post("/api/v1/users", json={**ADA, "email": "other@example.com"},
                           headers=hdrs)
    assert resp.status == 422
    assert await resp.json() == {"errors": [{
        "code": "idempotency_key_reuse",
        "message": "Idempotency-Key was already used with a different request",
        "field": "Idempotency-Key"}]}
    assert await stored_users(store) == [first]


# --- POST /api/v1/users/bulk --------------------------------------------------------------


MIXED = [
    {"external_user_id": "u0", "email": "u0@example.com", "traits": {"plan": "pro"}},
    {"email": "nobody@example.com"},
    {"external_user_id": "u2"},
    {"external_user_id": 42},
    {"external_user_id": "u4", "email": "not-an-email"},
    {"external_user_id": "u5", "traits": {"signupDate": "soon"}},
    "not an object",
    {"external_user_id": "u7", "traits": {f"k{i}": i for i in range(101)}},
    {"external_user_id": "u8", "traits": {"signup_date": "2024-01-15", "color": "blue"}},
]


async def test_bulk_stores_valid_records_and_reports_the_rest(
    http: Client, key: str, store: Store
) -> None:
    resp = await http.post("/api/v1/users/bulk", json={"users": MIXED}, headers=headers(key))
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "data": {"accepted": 3, "rejected": 6, "errors": [
            {"index": 1, "code": "validation_failed", "message": "external_user_id is required",
             "field": "external_user_id"},
            {"index": 3, "code": "validation_failed",
             "message": "external_user_id must be a string", "field": "external_user_id"},
            {"index": 4, "code": "validation_failed", "message": "email must be an email address",
             "field": "email"},
            {"index": 5, "code": "validation_failed",
             "message": "traits.signupDate must be an ISO-8601 date or date-time",
             "field": "traits.signupDate"},
            {"index": 6, "code": "validation_failed", "message": "record must be an object"},
            {"index": 7, "code": "validation_failed",
             "message": "traits at most 100 trait keys are allowed", "field": "traits"},
        ]},
        "meta": {"received": 9},
    }
    assert body["data"]["accepted"] + body["data"]["rejected"] == body["meta"]["received"]
    users = await stored_users(store)
    assert [u["external_id"] for u in users] == ["u0", "u2", "u8"]
    assert (users[0]["email"], users[0]["plan"]) == ("u0@example.com", "pro")
    assert users[2]["signed_up_at"] == datetime(2024, 1, 15, tzinfo=UTC)
    assert users[2]["traits"] == {"color": "blue"}


async def test_bulk_all_valid_and_all_invalid(http: Client, key: str, store: Store) -> None:
    users = [{"external_user_id": f"u{i}", "traits": {"n": i}} for i in range(1000)]
    resp = await http.post("/api/v1/users/bulk", json={"users": users}, headers=headers(key))
    assert resp.status == 200
    assert await resp.json() == {"data": {"accepted": 1000, "rejected": 0, "errors": []},
                                 "meta": {"received": 1000}}
    assert len(await stored_users(store)) == 1000

    resp = await http.post("/api/v1/users/bulk", json={"users": [{}, {"external_user_id": 1}]},
                           headers=headers(key))
    assert resp.status == 200
    assert await resp.json() == {"data": {"accepted": 0, "rejected": 2, "errors": [
        {"index": 0, "code": "validation_failed", "message": "external_user_id is required",
         "field": "external_user_id"},
        {"index": 1, "code": "validation_failed", "message": "external_user_id must be a string",
         "field": "external_user_id"},
    ]}, "meta": {"received": 2}}
    assert len(await stored_users(store)) == 1000


async def test_bulk_reupsert_updates_in_place(http: Client, key: str, store: Store) -> None:
    for plan in ("trial", "pro"):
        body = {"users": [{"external_user_id": "u1", "traits": {"plan": plan}}]}
        resp = await http.post("/api/v1/users/bulk", json=body, headers=headers(key))
        assert (await resp.json())["data"]["accepted"] == 1
    assert [(u["external_id"], u["plan"]) for u in await stored_users(store)] == [("u1", "pro")]


@pytest.mark.parametrize(("body", "field", "description"), [
    ({"users": []}, "users", "a batch holds 1 to 1000 users, got 0"),
    ({"users": [{"external_user_id": f"u{i}"} for i in range(1001)]}, "users",
     "a batch holds 1 to 1000 users, got 1001"),
    ({}, "users", "is required"),
    ({"users": {"external_user_id": "u"}}, "users", "must be an array"),
])
async def test_bulk_limits_are_422(
    http: Client, key: str, store: Store, body: dict[str, Any], field: str, description: str
) -> None:
    resp = await http.post("/api/v1/users/bulk", json=body, headers=headers(key))
    assert resp.status == 422
    assert await resp.json() == error(field, description)
    assert await stored_users(store) == []


async def test_bulk_non_json_is_400(http: Client, key: str, store: Store) -> None:
    resp = await http.post("/api/v1/users/bulk", data=b'{"users": [', headers=headers(key))
    assert resp.status == 400
    assert await resp.json() == {"errors": [
        {"code": "invalid_request", "message": "request body is not valid JSON"}]}
    assert await stored_users(store) == []


async def test_bulk_idempotency(http: Client, key: str, store: Store) -> None:
    hdrs = headers(key, **{"Idempotency-Key": "bulk-1"})
    first = await http.post("/api/v1/users/bulk", json={"users": MIXED}, headers=hdrs)
    assert first.status == 200
    first_body = await first.json()
    stored = await stored_users(store)
    again = await http.post("/api/v1/users/bulk", json={"users": MIXED}, headers=hdrs)
    assert again.status == 200
    assert await again.json() == first_body
    assert await stored_users(store) == stored  # nothing written twice
    resp = await http.post("/api/v1/users/bulk", json={"users": MIXED[:2]}, headers=hdrs)
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["code"] == "idempotency_key_reuse"
    assert await stored_users(store) == stored


# --- canonical events ----------------------------------------------------------------------

CANONICAL = [
    ("feature_used", "feature", "feature"),
    ("onboarding_step", "step", "step"),
    ("subscription_changed", "to", "to"),
    ("trial_expiring", "daysLeft", "days_left"),
    ("user_invited", "invitedEmail", "invited_email"),
]


@pytest.mark.parametrize(("name", "camel", "snake"), CANONICAL,
                         ids=[name for name, _, _ in CANONICAL])
async def test_canonical_event_requires_its_property(
    http: Client, key: str, store: Store, name: str, camel: str, snake: str
) -> None:
    for properties in (None, {}, {"other": 1}, {camel: None}):
        body: dict[str, Any] = {"external_user_id": "usr_42", "name": name}
        if properties is not None:
            body["properties"] = properties
        resp = await http.post("/api/v1/events", json=body, headers=headers(key))
        assert resp.status == 422, properties
        assert await resp.json() == error(f"properties.{camel}", f"is required for {name} events")
    assert await stored_events(store) == []
    # Presence only, in either spelling; any value type will do.
    for spelling, value in ((camel, "x"), (snake, 0)):
        resp = await http.post("/api/v1/events", headers=headers(key), json={
            "external_user_id": "usr_42", "name": name, "properties": {spelling: value}})
        assert resp.status == 202, spelling
    assert [d["properties"] for d in await stored_events(store)] == [{camel: "x"}, {snake: 0}]


async def test_canonical_property_in_a_batch_names_the_index(
    http: Client, key: str, store: Store
) -> None:
    events: list[dict[str, Any]] = [
        {"external_user_id": "u", "name": "feature_used", "properties": {"feature": "export"}}
        for _ in range(5)]
    events[3]["properties"] = {"feat": "export"}
    resp = await http.post("/api/v1/events/batch", json={"events": events}, headers=headers(key))
    assert resp.status == 422
    assert await resp.json() == error("events[3].properties.feature",
                                      "is required for feature_used events")
    assert await stored_events(store) == []


async def test_other_events_need_no_properties(http: Client, key: str, store: Store) -> None:
    for name in ("user_signed_up", "trial_started", "subscription_cancelled", "payment_failed",
                 "dashboard_created"):
        resp = await http.post("/api/v1/events", json={"external_user_id": "u", "name": name},
                               headers=headers(key))
        assert resp.status == 202, name
    assert len(await stored_events(store)) == 5


# --- buffered events, tenant isolation -----------------------------------------------------


async def list_events(channel: grpc.aio.Channel, key: str, external_id: str) -> list[str]:
    stub = users_pb2_grpc.UserServiceStub(channel)
    response = await stub.ListUserEvents(
        users_pb2.ListUserEventsRequest(external_id=external_id),
        metadata=[("authorization", f"Bearer {key}")])
    return [event.name for event in response.events]


async def test_events_before_the_user_exists_join_its_history(
    http: Client, key: str, store: Store, channel: grpc.aio.Channel
) -> None:
    for name, ts in (("user_signed_up", "2024-01-01T00:00:00Z"),
                     ("trial_started", "2024-01-02T00:00:00Z")):
        resp = await http.post("/api/v1/events", headers=headers(key), json={
            "external_user_id": "usr_new", "name": name, "timestamp": ts})
        assert resp.status == 202
    assert await stored_users(store) == []
    resp = await http.post("/api/v1/users", json={"external_user_id": "usr_new"},
                           headers=headers(key))
    assert resp.status == 202
    assert await list_events(channel, key, "usr_new") == ["user_signed_up", "trial_started"]
    resp = await http.post("/api/v1/events", headers=headers(key), json={
        "external_user_id": "usr_new", "name": "feature_used", "properties": {"feature": "x"}})
    assert resp.status == 202
    assert await list_events(channel, key, "usr_new") == [
        "user_signed_up", "trial_started", "feature_used"]


async def test_projects_are_isolated(
    http: Client, make_key: KeyFactory, store: Store, channel: grpc.aio.Channel
) -> None:
    key_a, key_b = await make_key("project-a", ALL_SCOPES), await make_key("project-b", ALL_SCOPES)
    resp = await http.post("/api/v1/events", headers=headers(key_a), json={
        "external_user_id": "usr_42", "name": "user_signed_up"})
    assert resp.status == 202
    for key, plan in ((key_a, "trial"), (key_b, "pro")):
        resp = await http.post("/api/v1/users", headers=headers(key), json={
            "external_user_id": "usr_42", "traits": {"plan": plan}})
        assert resp.status == 202
    resp = await http.post("/api/v1/users/bulk", headers=headers(key_b), json={
        "users": [{"external_user_id": "usr_42", "traits": {"role": "owner"}}]})
    assert (await resp.json())["data"]["accepted"] == 1
    (user_a,) = await stored_users(store, "project-a")
    (user_b,) = await stored_users(store, "project-b")
    assert (user_a["plan"], user_a.get("role")) == ("trial", None)
    assert (user_b["plan"], user_b["role"]) == ("pro", "owner")
    assert await list_events(channel, key_a, "usr_42") == ["user_signed_up"]
    assert await list_events(channel, key_b, "usr_42") == []
