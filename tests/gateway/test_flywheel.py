"""Flywheel over real HTTP: ``POST /v1/events`` on a real gateway, gRPC server and database."""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import KeyFactory, stored_events, stored_users
from trackd.server.app import TrackdServer
from trackd.server.auth import ALL_SCOPES
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store

Client = TestClient[Any, Any]

# The seed's four request examples (flywheel-track-user-event.txt), verbatim as JSON.
SEED_USER_SIGNUP = b"""{
  "event": {
    "event": "user_signup",
    "user_id": "user123",
    "properties": {
      "source": "website",
      "plan": "premium",
      "utm_source": "google_ads",
      "utm_campaign": "summer2024"
    }
  }
}"""
SEED_PRODUCT_PURCHASED = b"""{
  "event": {
    "event": "product_purchased",
    "user_id": "user456",
    "timestamp": "2024-01-15T10:30:00Z",
    "properties": {
      "product_name": "Premium Plan",
      "price": 99.99,
      "currency": "USD",
      "payment_method": "credit_card",
      "order_id": "ord_123456"
    }
  }
}"""
SEED_ANONYMOUS_EVENT = b"""{
  "event": {
    "event": "page_viewed",
    "anonymous_id": "anon_789",
    "properties": {
      "page": "/pricing",
      "referrer": "https://google.com",
      "device_type": "mobile"
    }
  }
}"""
SEED_IDENTIFY_USER = b"""{
  "event": {
    "event": "user_updated_profile",
    "user_id": "user456",
    "identify": true,
    "properties": {
      "email": "john.doe@company.com",
      "first_name": "John",
      "last_name": "Doe",
      "phone": "+1-555-0123",
      "company": "Tech Corp",
      "plan_type": "premium"
    }
  }
}"""
SUCCESS = {"success": True, "message": "Event tracked successfully"}
PATH = "/v1/events"


def headers(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": key, "Auth-Type": "api", "Content-Type": "application/json",
            **extra}


def body(**fields: Any) -> dict[str, Any]:
    return {"event": {"event": "feature_used", "user_id": "u1", **fields}}


def validation(what: str) -> dict[str, str]:
    return {"error": f"Validation failed: {what}", "code": "VALIDATION_ERROR"}


async def assert_nothing_stored(store: Store) -> None:
    assert await store.db["events"].count_documents({}) == 0
    assert await store.db["users"].count_documents({}) == 0


# --- the seed's examples -----------------------------------------------------------------


async def test_seed_user_signup(http: Client, key: str, store: Store) -> None:
    resp = await http.post(PATH, data=SEED_USER_SIGNUP, headers=headers(key))
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == SUCCESS
    (doc,) = await stored_events(store)
    assert doc["name"] == "user_signup"
    assert doc["user_id"] == "user123"
    assert doc["anonymous_id"] is None
    assert doc["properties"] == {"source": "website", "plan": "premium",
                                 "utm_source": "google_ads", "utm_campaign": "summer2024"}
    assert uuid.UUID(doc["event_id"])  # generated
    assert doc["timestamp"] == doc["received_at"]  # absent -> server time
    assert await stored_users(store) == []  # no identify, no profile


async def test_seed_product_purchased(http: Client, key: str, store: Store) -> None:
    resp = await http.post(PATH, data=SEED_PRODUCT_PURCHASED, headers=headers(key))
    assert resp.status == 200
    assert await resp.json() == SUCCESS
    (doc,) = await stored_events(store)
    assert doc["name"] == "product_purchased"
    assert doc["user_id"] == "user456"
    assert doc["timestamp"] == datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
    assert doc["properties"] == {"product_name": "Premium Plan", "price": 99.99,
                                 "currency": "USD", "payment_method": "credit_card",
                                 "order_id": "ord_123456"}


async def test_seed_anonymous_event(http: Client, key: str, store: Store) -> None:
    resp = await http.post(PATH, data=SEED_ANONYMOUS_EVENT, headers=headers(key))
    assert resp.status == 200
    assert await resp.json() == SUCCESS
    (doc,) = await stored_events(store)
    assert doc["name"] == "page_viewed"
    assert doc["user_id"] is None
    assert doc["anonymous_id"] == "anon_789"
    assert doc["properties"] == {"page": "/pricing", "referrer": "https://google.com",
                                 "device_type": "mobile"}


async def test_seed_identify_user(http: Client, key: str, store: Store) -> None:
    resp = await http.post(PATH, data=SEED_IDENTIFY_USER, headers=headers(key))
    assert resp.status == 200
    assert await resp.json() == SUCCESS
    (user,) = await stored_users(store)
    assert user["external_id"] == "user456"
    assert user["email"] == "john.doe@company.com"  # the first email seen is the primary
    assert user["emails"] == ["john.doe@company.com"]
    assert user["first_name"] == "John"
    assert user["last_name"] == "Doe"
    assert user["phone"] == "+1-555-0123"
    assert user["phones"] == ["+1-555-0123"]
    assert user["company"] == "Tech Corp"
    assert "plan_type" not in user
    assert "plan_type" not in user.get("traits", {})
    (doc,) = await stored_events(store)
    assert doc["name"] == "user_updated_profile"
    assert doc["user_id"] == "user456"
    # The event keeps every property it was sent with; plan_type is only an event property.
    assert doc["properties"] == {
        "email": "john.doe@company.com", "first_name": "John", "last_name": "Doe",
        "phone": "+1-555-0123", "company": "Tech Corp", "plan_type": "premium"}


# --- behaviour -----------------------------------------------------------------------------


async def test_neither_user_nor_anonymous_id_gets_a_generated_anonymous_id(
    http: Client, key: str, store: Store
) -> None:
    resp = await http.post(PATH, json={"event": {"event": "page_viewed"}}, headers=headers(key))
    assert resp.status == 200
    (doc,) = await stored_events(store)
    assert doc["user_id"] is None
    assert uuid.UUID(doc["anonymous_id"])


async def test_repeated_event_id_is_stored_once(http: Client, key: str, store: Store) -> None:
    for _ in range(3):
        resp = await http.post(PATH, json=body(event_id="evt_123456789"), headers=headers(key))
        assert resp.status == 200
        assert await resp.json() == SUCCESS
    assert [d["event_id"] for d in await stored_events(store)] == ["evt_123456789"]


async def test_timestamp_offset_is_honoured(http: Client, key: str, store: Store) -> None:
    resp = await http.post(PATH, json=body(timestamp="2024-01-15T10:30:00+02:00"),
                           headers=headers(key))
    assert resp.status == 200
    (doc,) = await stored_events(store)
    assert doc["timestamp"] == datetime(2024, 1, 15, 8, 30, tzinfo=UTC)


async def test_flat_property_types_are_accepted(http: Client, key: str, store: Store) -> None:
    properties = {"source": "website", "plan": "premium", "price": 99.99, "is_trial": False,
                  "seats": 3, "signup_date": "2024-01-15T10:30:00Z"}
    resp = await http.post(PATH, json=body(properties=properties), headers=headers(key))
    assert resp.status == 200
    (doc,) = await stored_events(store)
    assert doc["properties"] == properties


async def test_full_name_is_split_into_first_and_last(
    http: Client, key: str, store: Store
) -> None:
    resp = await http.post(PATH, headers=headers(key), json=body(
        identify=True, properties={"full_name": "Mary Ann  van Dyke",
                                   "stripe_customer_id": "cus_123"}))
    assert resp.status == 200
    (user,) = await stored_users(store)
    assert (user["name"], user["first_name"], user["last_name"]) == (
        "Mary Ann  van Dyke", "Mary", "Ann  van Dyke")
    assert user["stripe_customer_id"] == "cus_123"


async def test_explicit_first_and_last_name_win_over_full_name(
    http: Client, key: str, store: Store
) -> None:
    resp = await http.post(PATH, headers=headers(key), json=body(
        identify=True, properties={"full_name": "Johnny Doe", "first_name": "John"}))
    assert resp.status == 200
    (user,) = await stored_users(store)
    assert (user["first_name"], user["last_name"]) == ("John", "Doe")


async def test_first_email_and_phone_become_primary_and_primary_fields_override(
    http: Client, key: str, store: Store
) -> None:
    steps = [
        {"email": "a@example.com", "phone": "+1-555-0001"},
        {"email": "b@example.com", "phone": "+1-555-0002"},
        {"primary_email": "c@example.com", "primary_phone": "+1-555-0003"},
    ]
    expected = [
        ("a@example.com", ["a@example.com"], "+1-555-0001", ["+1-555-0001"]),
        ("a@example.com", ["a@example.com", "b@example.com"], "+1-555-0001",
         ["+1-555-0001", "+1-555-0002"]),
        ("c@example.com", ["a@example.com", "b@example.com", "c@example.com"], "+1-555-0003",
         ["+1-555-0001", "+1-555-0002", "+1-555-0003"]),
    ]
    for properties, (email, emails, phone, phones) in zip(steps, expected, strict=True):
        resp = await http.post(PATH, json=body(identify=True, properties=properties),
                               headers=headers(key))
        assert resp.status == 200
        (user,) = await stored_users(store)
        assert (user["email"], user["emails"], user["phone"], user["phones"]) == (
            email, emails, phone, phones)
    assert len(await stored_events(store)) == 3


async def test_identify_links_the_anonymous_id(http: Client, key: str, store: Store) -> None:
    resp = await http.post(PATH, data=SEED_ANONYMOUS_EVENT, headers=headers(key))
    assert resp.status == 200
    resp = await http.post(PATH, headers=headers(key), json=body(
        user_id="user789", anonymous_id="anon_789", identify=True,
        properties={"email": "v@example.com"}))
    assert resp.status == 200
    (user,) = await stored_users(store)
    assert user["anonymous_ids"] == ["anon_789"]
    # The visitor's earlier page view is now the user's.
    assert [(d["name"], d["user_id"]) for d in await stored_events(store)] == [
        ("page_viewed", "user789"), ("feature_used", "user789")]


async def test_identify_false_touches_no_profile(http: Client, key: str, store: Store) -> None:
    resp = await http.post(PATH, json=body(identify=False, properties={"email": "x@y.z"}),
                           headers=headers(key))
    assert resp.status == 200
    assert await stored_users(store) == []
    assert len(await stored_events(store)) == 1


async def test_gzip_body_is_accepted(http: Client, key: str, store: Store) -> None:
    resp = await http.post(PATH, data=gzip.compress(SEED_USER_SIGNUP),
                           headers=headers(key, **{"Content-Encoding": "gzip"}))
    assert resp.status == 200
    assert len(await stored_events(store)) == 1


async def test_projects_are_isolated(http: Client, make_key: KeyFactory, store: Store) -> None:
    key_a, key_b = await make_key("project-a", ALL_SCOPES), await make_key("project-b", ALL_SCOPES)
    for key, email in ((key_a, "a@example.com"), (key_b, "b@example.com")):
        resp = await http.post(PATH, headers=headers(key), json=body(
            event_id="same-id", identify=True, properties={"email": email}))
        assert resp.status == 200
    assert [d["event_id"] for d in await stored_events(store, "project-a")] == ["same-id"]
    assert [d["event_id"] for d in await stored_events(store, "project-b")] == ["same-id"]
    assert [u["email"] for u in await stored_users(store, "project-a")] == ["a@example.com"]
    assert [u["email"] for u in await stored_users(store, "project-b")] == ["b@example.com"]


# --- every error status of the contract, with its exact body -----------------------------


async def test_missing_authorization_is_401(http: Client, store: Store) -> None:
    resp = await http.post(PATH, data=SEED_USER_SIGNUP, headers={"Auth-Type": "api"})
    assert resp.status == 401
    assert await resp.json() == {
        "error": "missing Authorization header: send the API key itself",
        "code": "UNAUTHORIZED"}
    await assert_nothing_stored(store)


async def test_bearer_prefixed_key_is_401(http: Client, key: str, store: Store) -> None:
    """Decided: Flywheel keys carry no ``Bearer `` prefix; a prefixed value is refused
    with a message saying so, rather than silently accepted."""
    for value in (f"Bearer {key}", f"bearer {key}"):
        resp = await http.post(PATH, data=SEED_USER_SIGNUP,
                               headers={"Authorization": value, "Auth-Type": "api"})
        assert resp.status == 401
        assert await resp.json() == {
            "error": "Authorization must be the API key itself, without a 'Bearer ' prefix",
            "code": "UNAUTHORIZED"}
    await assert_nothing_stored(store)


async def test_missing_or_wrong_auth_type_is_401(http: Client, key: str, store: Store) -> None:
    for auth_type in (None, "", "bearer", "apikey"):
        hdrs = {"Authorization": key}
        if auth_type is not None:
            hdrs["Auth-Type"] = auth_type
        resp = await http.post(PATH, data=SEED_USER_SIGNUP, headers=hdrs)
        assert resp.status == 401, auth_type
        assert await resp.json() == {"error": "Auth-Type header must be 'api'",
                                     "code": "UNAUTHORIZED"}
    await assert_nothing_stored(store)


async def test_invalid_and_revoked_keys_are_401(http: Client, store: Store) -> None:
    from trackd.server.auth import issue_key

    issued = await issue_key(store.keys, "acme")
    assert await store.keys.revoke(issued.record.key_id)
    for key in ("trk_unknown", issued.secret):
        resp = await http.post(PATH, data=SEED_USER_SIGNUP, headers=headers(key))
        assert resp.status == 401
        assert await resp.json() == {"error": "invalid or revoked API key",
                                     "code": "UNAUTHORIZED"}
    await assert_nothing_stored(store)


async def test_key_without_scope_is_403(http: Client, make_key: KeyFactory, store: Store) -> None:
    resp = await http.post(PATH, data=SEED_USER_SIGNUP, headers=headers(await make_key(scopes=())))
    assert resp.status == 403
    assert await resp.json() == {"error": "API key missing track:events scope",
                                 "code": "FORBIDDEN"}
    # identify needs users:write too; the event is not stored without the profile.
    track_only = await make_key(scopes=("track:events",))
    resp = await http.post(PATH, data=SEED_IDENTIFY_USER, headers=headers(track_only))
    assert resp.status == 403
    assert await resp.json() == {"error": "API key missing users:write scope",
                                 "code": "FORBIDDEN"}
    await assert_nothing_stored(store)


async def test_bad_event_name_pattern_is_400(http: Client, key: str, store: Store) -> None:
    for name in ("user signup", "user.signup", "événement", "a/b"):
        resp = await http.post(PATH, json={"event": {"event": name}}, headers=headers(key))
        assert resp.status == 400
        assert await resp.json() == validation("event name must match ^[a-zA-Z0-9_-]+$")
    await assert_nothing_stored(store)


async def test_missing_event_name_is_400(http: Client, key: str, store: Store) -> None:
    for event in ({"user_id": "u1"}, {"event": "", "user_id": "u1"}):
        resp = await http.post(PATH, json={"event": event}, headers=headers(key))
        assert resp.status == 400
        assert await resp.json() == validation("event name is required")
    await assert_nothing_stored(store)


async def test_nested_and_array_properties_are_400(http: Client, key: str, store: Store) -> None:
    for name, value in (("meta", {"a": 1}), ("tags", ["a", "b"])):
        resp = await http.post(PATH, json=body(properties={"ok": 1, name: value}),
                               headers=headers(key))
        assert resp.status == 400
        assert await resp.json() == validation(
            f"properties.{name} must be a string, boolean, number or ISO-8601 date-time "
            "(nested objects and arrays are not allowed)")
    await assert_nothing_stored(store)


async def test_timestamp_without_offset_is_400(http: Client, key: str, store: Store) -> None:
    resp = await http.post(PATH, json=body(timestamp="2024-01-15T10:30:00"),
                           headers=headers(key))
    assert resp.status == 400
    assert await resp.json() == validation("timestamp must carry a timezone offset")
    await assert_nothing_stored(store)


async def test_non_json_body_is_400(http: Client, key: str, store: Store) -> None:
    for raw in (b"not json", b'{"event": {"event": ', b""):
        resp = await http.post(PATH, data=raw, headers=headers(key))
        assert resp.status == 400
        assert await resp.json() == validation("request body is not valid JSON")
    await assert_nothing_stored(store)


async def test_body_over_5_mb_is_413(http: Client, key: str, store: Store) -> None:
    raw = b'{"event": {"event": "x", "properties": {"p": "' + b"a" * (5 * 1024 * 1024) + b'"}}}'
    resp = await http.post(PATH, data=raw, headers=headers(key))
    assert resp.status == 413
    assert await resp.json() == {"error": "request body exceeds the limit of 5242880 bytes",
                                 "code": "PAYLOAD_TOO_LARGE"}
    await assert_nothing_stored(store)


async def test_gzip_bomb_is_413(http: Client, key: str, store: Store) -> None:
    bomb = gzip.compress(b'{"event": {"event": "x"}}' + b" " * (6 * 1024 * 1024))
    resp = await http.post(PATH, data=bomb, headers=headers(key, **{"Content-Encoding": "gzip"}))
    assert resp.status == 413
    assert await resp.json() == {"error": "request body exceeds the limit of 5242880 bytes",
                                 "code": "PAYLOAD_TOO_LARGE"}
    await assert_nothing_stored(store)


@pytest.fixture
def rate_limits() -> dict[str, RateLimit]:
    """``limited_http``'s Flywheel dialect allows one request per key per hour."""
    return {"flywheel": RateLimit(1, 3600)}


async def test_rate_limit_is_429_with_retry_after(
    limited_http: Client, http: Client, make_key: KeyFactory, store: Store
) -> None:
    key, other = await make_key(), await make_key()
    assert (await limited_http.post(PATH, json=body(), headers=headers(key))).status == 200
    resp = await limited_http.post(PATH, json=body(), headers=headers(key))
    assert resp.status == 429
    retry = resp.headers["Retry-After"]
    assert 3500 <= int(retry) <= 3600
    assert await resp.json() == {
        "error": f"rate limit exceeded: 1 requests per 3600 s per key; retry in {retry} s",
        "code": "RATE_LIMITED"}
    # Per key: another key still gets through; and the default is no limit at all.
    assert (await limited_http.post(PATH, json=body(), headers=headers(other))).status == 200
    for _ in range(3):
        assert (await http.post(PATH, json=body(), headers=headers(key))).status == 200
    assert len(await stored_events(store)) == 5


async def test_unavailable_server_is_503_with_retry_after(
    http: Client, key: str, server: TrackdServer, store: Store
) -> None:
    await server.pipeline.close()  # the pipeline refuses writes, as during shutdown
    resp = await http.post(PATH, data=SEED_USER_SIGNUP, headers=headers(key))
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert await resp.json() == {
        "error": "trackd is shutting down; retry against another instance",
        "code": "SERVICE_UNAVAILABLE"}
    await assert_nothing_stored(store)


async def test_database_failure_is_500(http: Client, key: str, store: Store) -> None:
    # A real database fault: a unique index the upsert cannot satisfy.
    await store.db["users"].create_index([("project_id", 1), ("company", 1)], unique=True)
    first = body(identify=True, properties={"company": "Tech Corp"})
    assert (await http.post(PATH, json=first, headers=headers(key))).status == 200
    second = {"event": {**first["event"], "user_id": "u2"}}
    resp = await http.post(PATH, json=second, headers=headers(key))
    assert resp.status == 500
    assert await resp.json() == {"error": "the database failed the operation",
                                 "code": "INTERNAL_ERROR"}
    assert [u["external_id"] for u in await stored_users(store)] == ["u1"]
    assert [d["user_id"] for d in await stored_events(store)] == ["u1"]


# --- bad inputs, table-driven ---------------------------------------------------------------

INVALID_UTF8 = b'{"event": {"event": "x", "properties": {"p": "\xff\xfe"}}}'


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


BAD_INPUTS: list[tuple[str, Any, str]] = [
    # (case, body -- JSON value or raw bytes --, the named field and description)
    ("root not an object", [], "request body must be an object"),
    ("event missing", {}, "event is required"),
    ("event not an object", {"event": "user_signup"}, "event must be an object"),
    ("name not a string", {"event": {"event": 42}}, "event name must be a string"),
    ("user_id not a string", body(user_id=42), "user_id must be a string"),
    ("anonymous_id not a string", body(anonymous_id=["a"]), "anonymous_id must be a string"),
    ("event_id not a string", body(event_id=7), "event_id must be a string"),
    ("identify not a boolean", body(identify="yes"), "identify must be a boolean"),
    ("properties not an object", body(properties=["a"]), "properties must be an object"),
    ("timestamp as a number", body(timestamp=1705314600000),
     "timestamp must be an ISO-8601 date-time"),
    ("timestamp not a date", body(timestamp="yesterday"),
     "timestamp must be an ISO-8601 date-time"),
    ("timestamp a bare date", body(timestamp="2024-01-15"),
     "timestamp must be an ISO-8601 date-time"),
    ("name too long", {"event": {"event": "a" * 513, "user_id": "u1"}},
     "event name must be at most 512 characters"),
    ("user_id too long", body(user_id="u" * 257), "user_id must be at most 256 characters"),
    ("event_id too long", body(event_id="e" * 257), "event_id must be at most 256 characters"),
    ("too many properties", body(properties={f"k{i}": i for i in range(101)}),
     "properties at most 100 property keys are allowed"),
    ("properties over 1 MB", body(properties={"p": "a" * (1024 * 1024 + 1)}),
     "properties must be at most 1048576 bytes as JSON"),
    ("nested property", body(properties={"meta": {"a": 1}}),
     "properties.meta must be a string, boolean, number or ISO-8601 date-time "
     "(nested objects and arrays are not allowed)"),
    ("deep nesting", body(properties={"deep": nested(64)}),
     "properties.deep must be a string, boolean, number or ISO-8601 date-time "
     "(nested objects and arrays are not allowed)"),
    ("null property", body(properties={"gone": None}),
     "properties.gone must be a string, boolean, number or ISO-8601 date-time "
     "(nested objects and arrays are not allowed)"),
    ("huge integer", body(properties={"big": 2**60}),
     "properties.big is an integer beyond ±2^53; send it as a string to keep every digit"),
    ("huge float", b'{"event": {"event": "x", "user_id": "u", "properties": {"f": 1e400}}}',
     "properties.f must be a finite number"),
    ("reserved property key", body(properties={"$set": 1}),
     "properties.$set property keys must be non-empty, not start with '$' and not contain NUL"),
    ("invalid UTF-8", INVALID_UTF8, "request body is not valid JSON"),
    ("deeply nested JSON", b'{"event": ' + b"[" * 5000 + b"]" * 5000 + b"}",
     "request body is not valid JSON"),
    ("identify without user_id", {"event": {"event": "x", "anonymous_id": "a", "identify": True}},
     "user_id is required when identify is true"),
    ("identify with a non-string email", body(identify=True, properties={"email": 5}),
     "properties.email must be a string when identify is true"),
    ("identify with an invalid email", body(identify=True, properties={"email": "nope"}),
     "properties.email must be an email address"),
    ("identify with an invalid primary email",
     body(identify=True, properties={"primary_email": "nope"}),
     "properties.primary_email must be an email address"),
    ("identify with a too long company", body(identify=True, properties={"company": "c" * 1025}),
     "properties.company must be at most 1024 characters"),
    # The event is validated before the profile is written: nothing is half-stored.
    ("identify with an invalid event",
     body(identify=True, properties={"email": "ok@example.com",
                                     **{f"k{i}": i for i in range(100)}}),
     "properties at most 100 property keys are allowed"),
]


@pytest.mark.parametrize(("case", "payload", "what"), BAD_INPUTS,
                         ids=[case for case, _, _ in BAD_INPUTS])
async def test_bad_input_is_400_naming_the_field(
    http: Client, key: str, store: Store, case: str, payload: Any, what: str
) -> None:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    resp = await http.post(PATH, data=raw, headers=headers(key))
    assert resp.status == 400, case
    assert await resp.json() == validation(what)
    await assert_nothing_stored(store)
