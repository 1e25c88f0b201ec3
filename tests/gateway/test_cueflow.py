"""Cueflow over real HTTP: contacts and events, the gateway on port 0, the real gRPC server
and the real database; plus the dispatch of the path /api/v1/events shared with VibeFollow.

Every response body is compared whole, and the database is read back after each request:
what was stored, and that a rejected request stored nothing.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import KeyFactory, stored_events, stored_users
from trackd.gateway.dialects.shared_paths import NEITHER_SHAPE
from trackd.server.app import TrackdServer
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store

Client = TestClient[Any, Any]
ALL_SCOPES = ("track:events", "users:read", "users:write")

# The seed's example request body, verbatim (cueflow-events-api.txt).
SEED_EVENT = b"""{
"externalId": "user-123",
"eventKey": "purchase_completed",
"properties": {
"amount": 99.99,
"currency": "USD",
"plan": "pro",
"method": "credit_card"
}
}"""
SEED_PROPERTIES = {"amount": 99.99, "currency": "USD", "plan": "pro", "method": "credit_card"}
NOT_FOUND = {"error": "Contact not found"}
MISSING_AUTH = "missing or malformed Authorization header: expected 'Bearer <key>'"


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bad_request(detail: str) -> dict[str, str]:
    return {"error": f"Invalid request body: {detail}"}


async def snapshot(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every user and event of every project."""
    user_docs = [d async for d in store.db["users"].find({}, {"_id": 0}).sort("external_id", 1)]
    event_docs = [d async for d in store.db["events"].find({}, {"_id": 0}).sort("event_id", 1)]
    return user_docs, event_docs


def contact_body(doc: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The contact the API renders for stored user ``doc``; ``fields`` are the expected
    profile values (everything else null / empty)."""
    contact: dict[str, Any] = {
        "externalId": doc["external_id"], "email": None, "name": None, "phone": None,
        "avatarUrl": None, "role": None, "plan": None, "signedUpAt": None,
        "customAttributes": {}, **fields,
        "createdAt": iso(doc["created_at"]), "updatedAt": iso(doc["updated_at"])}
    return {"data": contact}


async def create_contact(http: Client, key: str, external_id: str = "user-123",
                         email: str = "ada@example.com", **fields: Any) -> dict[str, Any]:
    body = {"externalId": external_id, "email": email, **fields}
    resp = await http.post("/api/v1/contacts", json=body, headers=headers(key))
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


async def track(http: Client, key: str, external_id: str = "user-123",
                event_key: str = "feature_used",
                properties: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"externalId": external_id, "eventKey": event_key, "properties": properties or {}}
    resp = await http.post("/api/v1/events", json=body, headers=headers(key))
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = (await resp.json())["data"]
    return data


# --- events ---------------------------------------------------------------------------


async def test_seed_event_for_a_known_contact_is_201_and_stored(
    http: Client, key: str, store: Store
) -> None:
    await create_contact(http, key, "user-123")
    resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=headers(key))
    assert resp.status == 201
    assert resp.content_type == "application/json"
    body = await resp.json()

    (doc,) = await stored_events(store)
    assert body == {"data": {
        "id": doc["event_id"],
        "externalId": "user-123",
        "eventKey": "purchase_completed",
        "properties": SEED_PROPERTIES,
        "timestamp": iso(doc["timestamp"]),
    }}
    assert set(doc) == {"project_id", "event_id", "name", "user_id", "anonymous_id",
                        "timestamp", "received_at", "properties", "via",
                        "request_id"}
    assert doc["via"] == "cueflow"
    assert doc["project_id"] == "acme"
    assert doc["name"] == "purchase_completed"
    assert doc["user_id"] == "user-123"
    assert doc["anonymous_id"] is None
    assert doc["properties"] == SEED_PROPERTIES
    assert doc["received_at"] >= doc["timestamp"]


async def test_event_without_properties_is_201(http: Client, key: str, store: Store) -> None:
    await create_contact(http, key)
    resp = await http.post("/api/v1/events", json={"externalId": "user-123",
                                                   "eventKey": "signup_completed"},
                           headers=headers(key))
    assert resp.status == 201
    (doc,) = await stored_events(store)
    assert await resp.json() == {"data": {
        "id": doc["event_id"], "externalId": "user-123", "eventKey": "signup_completed",
        "properties": {}, "timestamp": iso(doc["timestamp"])}}
    assert doc["properties"] == {}


async def test_event_for_an_unknown_contact_is_404_and_not_stored(
    http: Client, key: str, store: Store
) -> None:
    resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=headers(key))
    assert resp.status == 404
    assert await resp.json() == NOT_FOUND
    assert await stored_events(store) == []
    assert await stored_users(store) == []


async def test_event_errors_use_the_cueflow_envelope(
    http: Client, key: str, make_key: KeyFactory, store: Store
) -> None:
    await create_contact(http, key)
    before = await snapshot(store)
    cases: list[tuple[dict[str, str], bytes, int, dict[str, str]]] = [
        (headers(key), b'{"externalId": "user-123", "eventKey": 5}', 400,
         bad_request("eventKey must be a string")),
        (headers(key), b'{"externalId": "user-123", "eventKey": "x", "properties": ',
         400, bad_request("request body is not valid JSON")),
        ({}, SEED_EVENT, 401, {"error": f"Unauthorized: {MISSING_AUTH}"}),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, SEED_EVENT, 401,
         {"error": f"Unauthorized: {MISSING_AUTH}"}),
        (headers("trk_unknown"), SEED_EVENT, 401,
         {"error": "Unauthorized: invalid or revoked API key"}),
        (headers(await make_key("acme", ("users:read",))), SEED_EVENT, 403,
         {"error": "Forbidden: API key missing track:events scope"}),
    ]
    for hdrs, body, status, expected in cases:
        resp = await http.post("/api/v1/events", data=body, headers=hdrs)
        assert resp.status == status, body
        assert await resp.json() == expected, body
        assert await snapshot(store) == before


async def test_unavailable_server_is_503_with_retry_after(
    http: Client, key: str, server: TrackdServer, store: Store
) -> None:
    await create_contact(http, key)
    await server.pipeline.close()  # the pipeline refuses writes, as during shutdown
    resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=headers(key))
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert await resp.json() == {"error": "Service unavailable: trackd is shutting down; "
                                          "retry against another instance"}
    assert await stored_events(store) == []


async def test_gzip_event_body_is_accepted(http: Client, key: str, store: Store) -> None:
    await create_contact(http, key)
    resp = await http.post("/api/v1/events", data=gzip.compress(SEED_EVENT),
                           headers={**headers(key), "Content-Encoding": "gzip"})
    assert resp.status == 201
    assert [d["name"] for d in await stored_events(store)] == ["purchase_completed"]


# --- rate limit -------------------------------------------------------------------------


@pytest.fixture
def rate_limits() -> dict[str, RateLimit]:
    """``limited_http`` allows 3 Cueflow requests per minute per key."""
    return {"cueflow": RateLimit(3, 60)}


async def test_rate_limit_is_429_with_retry_after(
    limited_http: Client, key: str, make_key: KeyFactory, store: Store
) -> None:
    await create_contact(limited_http, key)  # 1
    await track(limited_http, key)  # 2
    await track(limited_http, key)  # 3
    before = await snapshot(store)
    for path, body in (("/api/v1/events", SEED_EVENT),
                       ("/api/v1/contacts", b'{"email": "x@example.com"}')):
        resp = await limited_http.post(path, data=body, headers=headers(key))
        assert resp.status == 429
        assert await resp.json() == {"error": "Rate limit exceeded"}
        assert 1 <= int(resp.headers["Retry-After"]) <= 20
    resp = await limited_http.get("/api/v1/contacts/user-123", headers=headers(key))
    assert resp.status == 429
    assert await snapshot(store) == before
    # The limit is per key, and per dialect: VibeFollow's requests are not Cueflow's.
    assert (await limited_http.get("/api/v1/contacts/user-123",
                                   headers=headers(await make_key("acme", ALL_SCOPES)))
            ).status == 200
    resp = await limited_http.post("/api/v1/events", headers=headers(key),
                                   json={"external_user_id": "user-123", "name": "x"})
    assert resp.status == 202


async def test_rate_limit_counts_the_key_however_the_scheme_is_spelled(
    limited_http: Client, key: str,
) -> None:
    """Issue 11, finding 5: once a key is limited, another spelling of its Authorization
    header (scheme case, extra spaces) is the same key, not a fresh budget."""
    for _ in range(3):
        resp = await limited_http.get("/api/v1/contacts/nobody", headers=headers(key))
        assert resp.status == 404
    for authorization in (f"Bearer {key}", f"bearer {key}", f"BEARER {key}",
                          f"Bearer  {key}"):
        resp = await limited_http.get("/api/v1/contacts/nobody",
                                      headers={"Authorization": authorization})
        assert (resp.status, await resp.json()) == (429, {"error": "Rate limit exceeded"})
        assert resp.headers["RateLimit-Policy"] == '"cueflow";q=3;w=60'


async def test_default_rate_limit_is_100_per_minute(
    http: Client, key: str, store: Store
) -> None:
    # The bucket starts full: the first 100 requests pass, then it refills at 100/min,
    # far slower than requests arrive.
    for _ in range(100):
        resp = await http.get("/api/v1/contacts/nobody", headers=headers(key))
        assert resp.status == 404
    for _ in range(200):
        resp = await http.get("/api/v1/contacts/nobody", headers=headers(key))
        if resp.status == 429:
            break
        assert resp.status == 404
    assert resp.status == 429
    assert await resp.json() == {"error": "Rate limit exceeded"}
    assert int(resp.headers["Retry-After"]) >= 1


# --- contacts ---------------------------------------------------------------------------


async def test_create_then_update_contact_201_then_200(
    http: Client, key: str, store: Store
) -> None:
    body = {"externalId": "user-123", "email": "ada@example.com", "name": "Ada Lovelace",
            "phone": "+44 20 7946 0000", "avatarUrl": "https://example.com/ada.png",
            "role": "admin", "plan": "pro", "signedUpAt": "2024-01-15T10:30:00+02:00",
            "customAttributes": {"seats": 5, "beta": True, "ratio": 0.5, "team": "core"}}
    resp = await http.post("/api/v1/contacts", json=body, headers=headers(key))
    assert resp.status == 201
    (doc,) = await stored_users(store)
    profile = {"email": "ada@example.com", "name": "Ada Lovelace",
               "phone": "+44 20 7946 0000", "avatarUrl": "https://example.com/ada.png",
               "role": "admin", "plan": "pro", "signedUpAt": "2024-01-15T08:30:00.000Z",
               "customAttributes": {"seats": 5, "beta": True, "ratio": 0.5, "team": "core"}}
    assert await resp.json() == contact_body(doc, **profile)
    assert {k: v for k, v in doc.items() if k not in ("created_at", "updated_at")} == {
        "project_id": "acme", "external_id": "user-123", "email": "ada@example.com",
        "emails": ["ada@example.com"], "name": "Ada Lovelace", "phone": "+44 20 7946 0000",
        "phones": ["+44 20 7946 0000"], "avatar_url": "https://example.com/ada.png",
        "role": "admin", "plan": "pro",
        "signed_up_at": datetime(2024, 1, 15, 8, 30, tzinfo=UTC),
        "traits": {"seats": 5, "beta": True, "ratio": 0.5, "team": "core"}}

    # Re-posting the same external id updates in place: 200, one contact.
    resp = await http.post("/api/v1/contacts", headers=headers(key), json={
        "externalId": "user-123", "email": "ada@example.com", "plan": "enterprise",
        "customAttributes": {"seats": 9}})
    assert resp.status == 200
    (doc,) = await stored_users(store)
    assert await resp.json() == contact_body(doc, **{
        **profile, "plan": "enterprise",
        "customAttributes": {"seats": 9, "beta": True, "ratio": 0.5, "team": "core"}})
    assert doc["created_at"] < doc["updated_at"]


async def test_external_id_defaults_to_email(http: Client, key: str, store: Store) -> None:
    resp = await http.post("/api/v1/contacts", json={"email": "grace@example.com"},
                           headers=headers(key))
    assert resp.status == 201
    (doc,) = await stored_users(store)
    assert doc["external_id"] == "grace@example.com"
    assert await resp.json() == contact_body(doc, email="grace@example.com")
    # The same email again is the same contact.
    resp = await http.post("/api/v1/contacts", json={"email": "grace@example.com",
                                                     "name": "Grace"}, headers=headers(key))
    assert resp.status == 200
    (doc,) = await stored_users(store)
    assert await resp.json() == contact_body(doc, email="grace@example.com", name="Grace")
    resp = await http.get("/api/v1/contacts/grace@example.com", headers=headers(key))
    assert resp.status == 200
    assert await resp.json() == contact_body(doc, email="grace@example.com", name="Grace")


async def test_get_contact(http: Client, key: str, store: Store) -> None:
    await create_contact(http, key, plan="pro")
    resp = await http.get("/api/v1/contacts/user-123", headers=headers(key))
    assert resp.status == 200
    (doc,) = await stored_users(store)
    assert await resp.json() == contact_body(doc, email="ada@example.com", plan="pro")
    resp = await http.get("/api/v1/contacts/user-999", headers=headers(key))
    assert resp.status == 404
    assert await resp.json() == NOT_FOUND


async def test_patch_changes_only_the_fields_present(
    http: Client, key: str, store: Store
) -> None:
    await create_contact(http, key, name="Ada", role="admin", plan="trial", phone="+1 555",
                         customAttributes={"seats": 5, "beta": True})
    resp = await http.patch("/api/v1/contacts/user-123", headers=headers(key), json={
        "plan": "pro", "role": None, "phone": "", "customAttributes": {"seats": 6, "beta": None}})
    assert resp.status == 200
    (doc,) = await stored_users(store)
    assert await resp.json() == contact_body(
        doc, email="ada@example.com", name="Ada", plan="pro", customAttributes={"seats": 6})
    assert doc["name"] == "Ada"
    assert "role" not in doc
    assert "phone" not in doc
    assert doc["traits"] == {"seats": 6}

    # An empty body changes nothing but the update time.
    resp = await http.patch("/api/v1/contacts/user-123", json={}, headers=headers(key))
    assert resp.status == 200
    (after,) = await stored_users(store)
    assert {k: v for k, v in after.items() if k != "updated_at"} == \
        {k: v for k, v in doc.items() if k != "updated_at"}


async def test_patch_of_an_unknown_contact_is_404_and_creates_nothing(
    http: Client, key: str, store: Store
) -> None:
    resp = await http.patch("/api/v1/contacts/user-999", json={"plan": "pro"},
                            headers=headers(key))
    assert resp.status == 404
    assert await resp.json() == NOT_FOUND
    assert await stored_users(store) == []


async def test_delete_by_email_and_by_external_id_removes_contact_and_events(
    http: Client, key: str, store: Store
) -> None:
    # An event sent through VibeFollow before the contact existed is theirs too.
    resp = await http.post("/api/v1/events", headers=headers(key),
                           json={"external_user_id": "user-123", "name": "early"})
    assert resp.status == 202
    await create_contact(http, key, "user-123", "ada@example.com")
    await create_contact(http, key, "user-456", "grace@example.com")
    for _ in range(2):
        await track(http, key, "user-123")
    await track(http, key, "user-456")
    events = store.db["events"]
    assert await events.count_documents({"user_id": "user-123"}) == 3

    resp = await http.delete("/api/v1/contacts/ada@example.com", headers=headers(key))
    assert resp.status == 200
    assert await resp.json() == {"data": {"deleted": True, "externalId": "user-123",
                                          "deletedEvents": 3}}
    assert await events.count_documents({"user_id": "user-123"}) == 0
    assert [d["external_id"] for d in await stored_users(store)] == ["user-456"]
    resp = await http.get("/api/v1/contacts/user-123", headers=headers(key))
    assert resp.status == 404
    assert await resp.json() == NOT_FOUND

    resp = await http.delete("/api/v1/contacts/user-456", headers=headers(key))
    assert resp.status == 200
    assert await resp.json() == {"data": {"deleted": True, "externalId": "user-456",
                                          "deletedEvents": 1}}
    assert await events.count_documents({}) == 0
    assert await stored_users(store) == []
    resp = await http.get("/api/v1/contacts/user-456", headers=headers(key))
    assert resp.status == 404

    # Deleting again, or deleting what never was, is 404.
    for identifier in ("user-456", "ada@example.com", "nobody"):
        resp = await http.delete(f"/api/v1/contacts/{identifier}", headers=headers(key))
        assert resp.status == 404
        assert await resp.json() == NOT_FOUND


async def test_contact_errors_use_the_cueflow_envelope(
    http: Client, key: str, make_key: KeyFactory, store: Store
) -> None:
    await create_contact(http, key)
    before = await snapshot(store)
    read_only = await make_key("acme", ("users:read",))
    events_only = await make_key("acme", ("track:events",))
    missing = {"error": f"Unauthorized: {MISSING_AUTH}"}
    invalid = {"error": "Unauthorized: invalid or revoked API key"}
    cases: list[tuple[str, str, dict[str, str], int, dict[str, str]]] = [
        ("POST", "/api/v1/contacts", {}, 401, missing),
        ("GET", "/api/v1/contacts/user-123", {}, 401, missing),
        ("PATCH", "/api/v1/contacts/user-123", {}, 401, missing),
        ("DELETE", "/api/v1/contacts/user-123", {}, 401, missing),
        ("POST", "/api/v1/contacts", headers("trk_unknown"), 401, invalid),
        ("GET", "/api/v1/contacts/user-123", headers("trk_unknown"), 401, invalid),
        ("PATCH", "/api/v1/contacts/user-123", headers("trk_unknown"), 401, invalid),
        ("DELETE", "/api/v1/contacts/user-123", headers("trk_unknown"), 401, invalid),
        ("POST", "/api/v1/contacts", headers(read_only), 403,
         {"error": "Forbidden: API key missing users:write scope"}),
        ("PATCH", "/api/v1/contacts/user-123", headers(read_only), 403,
         {"error": "Forbidden: API key missing users:write scope"}),
        ("DELETE", "/api/v1/contacts/user-123", headers(read_only), 403,
         {"error": "Forbidden: API key missing users:write scope"}),
        ("GET", "/api/v1/contacts/user-123", headers(events_only), 403,
         {"error": "Forbidden: API key missing users:read scope"}),
    ]
    for method, path, hdrs, status, expected in cases:
        resp = await http.request(method, path, headers=hdrs,
                                  json={"email": "ada@example.com", "plan": "x"})
        assert resp.status == status, (method, path)
        assert await resp.json() == expected, (method, path)
        assert await snapshot(store) == before


async def test_body_over_5_mb_is_413_naming_the_limit(
    http: Client, key: str, store: Store
) -> None:
    body = b'{"email": "a@example.com", "name": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    for data, extra in ((body, {}), (gzip.compress(body), {"Content-Encoding": "gzip"})):
        resp = await http.post("/api/v1/contacts", data=data, headers={**headers(key), **extra})
        assert resp.status == 413
        assert await resp.json() == {
            "error": "Payload too large: request body exceeds the limit of 5242880 bytes"}
    assert await stored_users(store) == []


# --- bad input, table-driven ------------------------------------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# The first object protobuf could not decode: 33 below customAttributes.
TOO_DEEP = ("customAttributes" + ".a" * 33 + " nests too deeply for protobuf to decode "
            "(at most 33 nested objects here; an array counts two thirds of one)")
BAD_CONTACTS: list[tuple[bytes, str]] = [
    (b"{}", "email is required"),
    (b'{"email": 5}', "email must be a string"),
    (b'{"email": null}', "email must be a string"),
    (b'{"email": ""}', "email must not be empty"),
    (b'{"email": "not-an-email"}', "email must be an email address"),
    (orjson.dumps({"email": "a" * 250 + "@b.co"}), "email must be at most 254 characters"),
    (b'{"email": "a@b.co", "externalId": 7}', "externalId must be a string"),
    (b'{"email": "a@b.co", "externalId": ""}', "externalId must not be empty"),
    (orjson.dumps({"email": "a@b.co", "externalId": "x" * 257}),
     "externalId must be at most 256 characters"),
    (b'{"email": "a@b.co", "name": 5}', "name must be a string"),
    (b'{"email": "a@b.co", "plan": ["pro"]}', "plan must be a string"),
    (b'{"email": "a@b.co", "role": {"x": 1}}', "role must be a string"),
    (orjson.dumps({"email": "a@b.co", "name": "x" * 1025}),
     "name must be at most 1024 characters"),
    (orjson.dumps({"email": "a@b.co", "avatarUrl": "x" * 2049}),
     "avatarUrl must be at most 2048 characters"),
    (b'{"email": "a@b.co", "signedUpAt": "yesterday"}',
     "signedUpAt must be an ISO-8601 date-time"),
    (b'{"email": "a@b.co", "signedUpAt": 1700000000}',
     "signedUpAt must be an ISO-8601 date-time"),
    (b'{"email": "a@b.co", "customAttributes": []}', "customAttributes must be an object"),
    (b'{"email": "a@b.co", "customAttributes": "x"}', "customAttributes must be an object"),
    (b'{"email": "a@b.co", "customAttributes": {"big": 1180591620717411303424}}',
     "customAttributes.big is an integer beyond ±2^53; send it as a string to keep "
     "every digit"),
    (b'{"email": "a@b.co", "customAttributes": {"x": 1e400}}',
     "customAttributes.x must be a finite number"),
    (b'{"email": "a@b.co", "customAttributes": {"a.b": 1}}',
     "customAttributes.a.b trait keys must be non-empty and contain no '.', '$' or NUL"),
    (orjson.dumps({"email": "a@b.co", "customAttributes": {f"k{i}": i for i in range(101)}}),
     "customAttributes at most 100 trait keys are allowed"),
    (orjson.dumps({"email": "a@b.co", "customAttributes": nested(50)}), TOO_DEEP),
    # Refused by the gateway before any message is built: no longer the server's 400.
    (orjson.dumps({"email": "a@b.co", "customAttributes": nested(35)}), TOO_DEEP),
    (b'{"email": "a@b.co", "name": "\xff"}', "request body is not valid JSON"),
    (b'{"email": "a@b.co"', "request body is not valid JSON"),
    (b'{"email": "a@b.co", "customAttributes": ' + b"[" * 5000 + b"]" * 5000 + b"}",
     "request body is not valid JSON"),
    (b"[]", "request body must be an object"),
    (b'"a@b.co"', "request body must be an object"),
]


async def test_bad_contacts_are_400_naming_the_field(
    http: Client, key: str, store: Store
) -> None:
    await create_contact(http, key)
    before = await snapshot(store)
    for body, detail in BAD_CONTACTS:
        resp = await http.post("/api/v1/contacts", data=body, headers=headers(key))
        assert (resp.status, await resp.json()) == (400, bad_request(detail)), body[:80]
    assert await snapshot(store) == before


BAD_PATCHES: list[tuple[bytes, str]] = [
    (b'{"email": null}', "email must be a string"),
    (b'{"email": "nope"}', "email must be an email address"),
    (b'{"externalId": "user-456"}', "externalId cannot be changed"),
    (b'{"signedUpAt": null}', "signedUpAt must be an ISO-8601 date-time"),
    (b'{"name": 1.5}', "name must be a string"),
    (b'{"customAttributes": null}', "customAttributes must be an object"),
    (b'{"customAttributes": {"": 1}}',
     "customAttributes. trait keys must be non-empty and contain no '.', '$' or NUL"),
    (b"\xff", "request body is not valid JSON"),
    (b"", "request body is not valid JSON"),
]


async def test_bad_patches_are_400_naming_the_field(
    http: Client, key: str, store: Store
) -> None:
    await create_contact(http, key)
    before = await snapshot(store)
    for body, detail in BAD_PATCHES:
        resp = await http.patch("/api/v1/contacts/user-123", data=body, headers=headers(key))
        assert (resp.status, await resp.json()) == (400, bad_request(detail)), body
    assert await snapshot(store) == before


def cueflow_event(**fields: Any) -> dict[str, Any]:
    return {"externalId": "user-123", "eventKey": "feature_used", **fields}


BAD_EVENTS: list[tuple[bytes, str]] = [
    (b'{"externalId": "user-123"}', "eventKey is required"),
    (b'{"eventKey": "feature_used"}', "externalId is required"),
    (b'{"externalId": 123, "eventKey": "feature_used"}', "externalId must be a string"),
    (b'{"externalId": "user-123", "eventKey": true}', "eventKey must be a string"),
    (b'{"externalId": "", "eventKey": "feature_used"}', "externalId must not be empty"),
    (b'{"externalId": "user-123", "eventKey": ""}', "eventKey must not be empty"),
    (orjson.dumps(cueflow_event(eventKey="k" * 513)), "eventKey must be at most 512 characters"),
    (orjson.dumps(cueflow_event(externalId="u" * 257)),
     "externalId must be at most 256 characters"),
    (orjson.dumps(cueflow_event(properties=[])), "properties must be an object"),
    (orjson.dumps(cueflow_event(properties="x")), "properties must be an object"),
    (orjson.dumps(cueflow_event(properties={"cart": {"total": 5}})),
     "properties.cart must be a string, number or boolean (properties are flat)"),
    (orjson.dumps(cueflow_event(properties={"tags": ["a", "b"]})),
     "properties.tags must be a string, number or boolean (properties are flat)"),
    (orjson.dumps(cueflow_event(properties={"none": None})),
     "properties.none must be a string, number or boolean (properties are flat)"),
    (orjson.dumps(cueflow_event(properties={"a": nested(60)})),
     "properties.a must be a string, number or boolean (properties are flat)"),
    (b'{"externalId": "user-123", "eventKey": "k", "properties": {"n": 36893488147419103232}}',
     "properties.n is an integer beyond ±2^53; send it as a string to keep every digit"),
    (b'{"externalId": "user-123", "eventKey": "k", "properties": {"n": -1e999}}',
     "properties.n must be a finite number"),
    (orjson.dumps(cueflow_event(properties={f"k{i}": i for i in range(101)})),
     "properties at most 100 property keys are allowed"),
    (orjson.dumps(cueflow_event(properties={"$set": 1})),
     "properties.$set property keys must be non-empty, not start with '$' and not contain NUL"),
    (orjson.dumps(cueflow_event(properties={"big": "x" * (1024 * 1024)})),
     "properties must be at most 1048576 bytes as JSON"),
    (b'{"externalId": "user-123", "eventKey": "k\xff"}', "request body is not valid JSON"),
    (b'{"externalId": "user-123", "eventKey": ', "request body is not valid JSON"),
]


async def test_bad_events_are_400_naming_the_field(
    http: Client, key: str, store: Store
) -> None:
    await create_contact(http, key)
    before = await snapshot(store)
    for body, detail in BAD_EVENTS:
        resp = await http.post("/api/v1/events", data=body, headers=headers(key))
        assert (resp.status, await resp.json()) == (400, bad_request(detail)), body[:80]
    assert await snapshot(store) == before


async def test_flat_property_types_are_accepted(http: Client, key: str, store: Store) -> None:
    await create_contact(http, key)
    properties: dict[str, Any] = {"s": "x", "i": 3, "f": 2.5, "t": True, "z": 0,
                                  "neg": -(2**53)}
    data = await track(http, key, properties=properties)
    assert data["properties"] == properties
    (doc,) = await stored_events(store)
    assert doc["properties"] == properties


# --- tenant isolation -------------------------------------------------------------------


async def test_a_key_of_project_b_cannot_touch_project_a_contacts(
    http: Client, make_key: KeyFactory, store: Store
) -> None:
    key_a = await make_key("project-a", ALL_SCOPES)
    key_b = await make_key("project-b", ALL_SCOPES)
    await create_contact(http, key_a, "user-123", "ada@example.com", plan="pro")
    await track(http, key_a, "user-123")
    before = await snapshot(store)

    requests: list[tuple[str, str, Any]] = [
        ("GET", "/api/v1/contacts/user-123", None),
        ("PATCH", "/api/v1/contacts/user-123", {"plan": "free"}),
        ("DELETE", "/api/v1/contacts/user-123", None),
        ("DELETE", "/api/v1/contacts/ada@example.com", None),
        ("POST", "/api/v1/events", {"externalId": "user-123", "eventKey": "x"}),
    ]
    for method, path, body in requests:
        resp = await http.request(method, path, json=body, headers=headers(key_b))
        assert resp.status == 404, (method, path)
        assert await resp.json() == NOT_FOUND
        assert await snapshot(store) == before

    # Project B's own contact of the same id is a different contact.
    resp = await http.post("/api/v1/contacts", headers=headers(key_b),
                           json={"externalId": "user-123", "email": "other@example.com"})
    assert resp.status == 201
    (doc_a,) = await stored_users(store, "project-a")
    assert doc_a == before[0][0]
    resp = await http.get("/api/v1/contacts/user-123", headers=headers(key_a))
    assert await resp.json() == contact_body(doc_a, email="ada@example.com", plan="pro")


# --- the shared path /api/v1/events -----------------------------------------------------


async def test_each_shape_goes_to_its_dialect(http: Client, key: str, store: Store) -> None:
    # VibeFollow: 202, buffered for a user that does not exist.
    resp = await http.post("/api/v1/events", headers=headers(key),
                           json={"external_user_id": "usr_42", "name": "user_signed_up"})
    assert resp.status == 202
    assert await resp.json() == {"data": {"accepted": True}}
    # Cueflow: the same kind of body for an unknown contact is 404, not buffered.
    resp = await http.post("/api/v1/events", headers=headers(key),
                           json={"externalId": "usr_42", "eventKey": "user_signed_up"})
    assert resp.status == 404
    assert await resp.json() == NOT_FOUND
    # A Cueflow body carrying one extra VibeFollow key is still Cueflow's.
    await create_contact(http, key, "user-123")
    resp = await http.post("/api/v1/events", headers=headers(key), json={
        "externalId": "user-123", "eventKey": "purchase_completed", "name": "ignored"})
    assert resp.status == 201
    assert [(d["user_id"], d["name"]) for d in await stored_events(store)] == [
        ("usr_42", "user_signed_up"), ("user-123", "purchase_completed")]


async def test_a_body_of_neither_shape_names_both(http: Client, key: str, store: Store) -> None:
    expected = {"errors": [{"code": "validation_failed", "message": NEITHER_SHAPE}]}
    for body in (b"{}", b'{"event": "x", "user_id": "u"}', b'{"externalId": "u", "name": "x"}',
                 b'{"eventKey": "k", "external_user_id": "u"}', b"[]", b'"x"', b"42",
                 b"null"):
        resp = await http.post("/api/v1/events", data=body, headers=headers(key))
        assert resp.status == 422, body
        assert await resp.json() == expected, body
    assert NEITHER_SHAPE == (
        "request body must be one of the two event shapes accepted at /api/v1/events: "
        "VibeFollow {external_user_id, name, properties?} or "
        "Cueflow {externalId, eventKey, properties?}")
    assert await stored_events(store) == []


async def test_401_envelope_follows_the_body_shape(http: Client, store: Store) -> None:
    vibefollow = {"errors": [{"code": "unauthorized", "message": MISSING_AUTH}]}
    cueflow = {"error": f"Unauthorized: {MISSING_AUTH}"}
    cases = [
        (SEED_EVENT, cueflow),
        (b'{"externalId": "user-123", "eventKey": ', cueflow),  # not JSON, Cueflow's keys
        (b'{"external_user_id": "usr_42", "name": "user_signed_up"}', vibefollow),
        (b"{}", vibefollow),
        (b"not json", vibefollow),
        (b"", vibefollow),
    ]
    for body, expected in cases:
        resp = await http.post("/api/v1/events", data=body)
        assert resp.status == 401, body
        assert await resp.json() == expected, body
    resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=headers("trk_unknown"))
    assert resp.status == 401
    assert await resp.json() == {"error": "Unauthorized: invalid or revoked API key"}
    assert await stored_events(store) == []


async def test_unreadable_body_on_the_shared_path_is_vibefollow_413(
    http: Client, key: str, store: Store
) -> None:
    body = b'{"externalId": "user-123", "eventKey": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    resp = await http.post("/api/v1/events", data=body, headers=headers(key))
    assert resp.status == 413
    assert await resp.json() == {"errors": [{
        "code": "payload_too_large",
        "message": "request body exceeds the limit of 5242880 bytes"}]}
    assert await stored_events(store) == []
