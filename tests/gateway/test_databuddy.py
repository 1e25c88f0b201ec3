"""Databuddy over real HTTP: the gateway on port 0, the real gRPC server, the real database.

Every example of Databuddy's own documentation verbatim, every error
docs/dialects/databuddy.md lists with its exact body, browser tracking by website id (origins,
CORS, sendBeacon),
keys limited to websites, identify, and what the database holds after each.
"""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import KeyFactory, stored_events
from trackd.server.app import TrackdServer
from trackd.server.auth import issue_key
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store

Client = TestClient[Any, Any]

# The seed's examples, verbatim.
SEED_SINGLE = b"""{
    "name": "button_clicked",
    "namespace": "ui",
    "properties": {
      "button_id": "signup",
      "page": "/pricing"
    },
    "anonymousId": "user-123",
    "sessionId": "session-456"
  }"""
SEED_MULTIPLE = b"""[
    {
      "name": "page_viewed",
      "properties": {
        "path": "/dashboard"
      }
    },
    {
      "name": "feature_used",
      "namespace": "product",
      "properties": {
        "feature": "export",
        "format": "csv"
      }
    }
  ]"""
SEED_WEBSITE_ID = "550e8400-e29b-41d4-a716-446655440000"
SEED_CLIENT_SIDE = b"""{
    "name": "video_played",
    "properties": {
      "video_id": "intro-2024",
      "duration": 120
    }
  }"""

ORIGIN = "https://shop.example.com"
OTHER_ORIGIN = "https://evil.example.net"


def ok(count: int) -> dict[str, Any]:
    return {"status": "success", "type": "custom_event", "count": count}


def error(message: str) -> dict[str, str]:
    return {"status": "error", "message": message}


INVALID = error("Invalid request body")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


async def make_website(store: Store, project: str = "acme", origins: tuple[str, ...] = (ORIGIN,),
                       *, website_id: str | None = None, server_side: bool = True) -> str:
    website_id = website_id or str(uuid.uuid4())
    await store.websites.insert(website_id, project, list(origins),
                                allow_server_side=server_side)
    return website_id


async def all_events(store: Store) -> list[dict[str, Any]]:
    return [doc async for doc in store.db["events"].find({}, {"_id": 0})]


# --- the seed's examples ------------------------------------------------------------------


async def test_seed_single_event(http: Client, api_key: str, store: Store) -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    resp = await http.post("/track", data=SEED_SINGLE, headers=bearer(api_key))
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == ok(1)

    (doc,) = await stored_events(store)
    event_id = doc.pop("event_id")
    assert uuid.UUID(event_id)
    received_at = doc.pop("received_at")
    assert before <= received_at <= datetime.now(UTC)
    assert doc.pop("request_id") == resp.headers["X-Request-Id"]
    assert doc == {
        "project_id": "acme", "name": "button_clicked", "user_id": None,
        "anonymous_id": "user-123", "timestamp": received_at,
        "properties": {"button_id": "signup", "page": "/pricing"},
        "namespace": "ui", "session_id": "session-456", "via": "databuddy",
    }


async def test_seed_multiple_events(http: Client, api_key: str, store: Store) -> None:
    resp = await http.post("/track", data=SEED_MULTIPLE, headers=bearer(api_key))
    assert resp.status == 200
    assert await resp.json() == ok(2)
    docs = sorted(await stored_events(store), key=lambda d: d["name"])
    assert [(d["name"], d.get("namespace"), d["properties"]) for d in docs] == [
        ("feature_used", "product", {"feature": "export", "format": "csv"}),
        ("page_viewed", None, {"path": "/dashboard"}),
    ]
    # No profileId and no anonymousId: each event gets its own generated anonymous id.
    assert all(d["user_id"] is None and uuid.UUID(d["anonymous_id"]) for d in docs)
    assert docs[0]["anonymous_id"] != docs[1]["anonymous_id"]


async def test_seed_website_id_client_side(http: Client, store: Store) -> None:
    await make_website(store, website_id=SEED_WEBSITE_ID)
    resp = await http.post(f"/track?website_id={SEED_WEBSITE_ID}", data=SEED_CLIENT_SIDE,
                           headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert await resp.json() == ok(1)
    (doc,) = await stored_events(store)
    assert doc["name"] == "video_played"
    assert doc["properties"] == {"video_id": "intro-2024", "duration": 120}
    assert doc["website_id"] == SEED_WEBSITE_ID


# --- fields -------------------------------------------------------------------------------


async def test_every_field_is_stored(http: Client, api_key: str, store: Store) -> None:
    website = await make_website(store)
    body = {"name": "checkout", "namespace": "billing", "timestamp": 1_700_000_000_123,
            "properties": {"total": 12.5, "items": [{"sku": "a"}], "gift": False},
            "anonymousId": "anon-1", "sessionId": "sess-1", "websiteId": website.upper(),
            "source": "web", "eventId": "evt-1", "profileId": "user-1",
            "anonymizeVisitorIds": "auto", "unknownField": {"ignored": True}}
    resp = await http.post("/track", json=body, headers=bearer(api_key))
    assert await resp.json() == ok(1)
    (doc,) = await stored_events(store)
    doc.pop("received_at")
    assert doc.pop("request_id") == resp.headers["X-Request-Id"]
    assert doc == {
        "project_id": "acme", "event_id": "evt-1", "name": "checkout", "user_id": "user-1",
        "anonymous_id": "anon-1",
        "timestamp": datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC),
        "properties": {"total": 12.5, "items": [{"sku": "a"}], "gift": False},
        "namespace": "billing", "session_id": "sess-1", "source": "web", "website_id": website,
        "via": "databuddy",
    }


@pytest.mark.parametrize(("value", "expected"), [
    ("2024-01-15T10:30:00+02:00", datetime(2024, 1, 15, 8, 30, tzinfo=UTC)),
    ("2024-01-15T10:30:00Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
    ("2024-01-15T10:30:00.250", datetime(2024, 1, 15, 10, 30, 0, 250_000, tzinfo=UTC)),
    (1_705_314_600_000, datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
    (1_705_314_600_000.9, datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
])
async def test_timestamp_as_unix_ms_or_iso(
    http: Client, api_key: str, store: Store, value: Any, expected: datetime
) -> None:
    resp = await http.post("/track", json={"name": "e", "anonymousId": "a", "timestamp": value},
                           headers=bearer(api_key))
    assert await resp.json() == ok(1)
    (doc,) = await stored_events(store)
    assert doc["timestamp"] == expected


async def test_x_api_key_header(http: Client, api_key: str, store: Store) -> None:
    resp = await http.post("/track", data=SEED_SINGLE, headers={"x-api-key": api_key})
    assert await resp.json() == ok(1)
    assert len(await stored_events(store)) == 1


async def test_repeated_event_id_is_accepted_not_stored_twice_and_not_counted(
    http: Client, api_key: str, store: Store
) -> None:
    body = {"name": "e", "anonymousId": "a", "eventId": "evt-1"}
    assert await (await http.post("/track", json=body, headers=bearer(api_key))).json() == ok(1)
    assert await (await http.post("/track", json=body, headers=bearer(api_key))).json() == ok(0)
    resp = await http.post("/track", json=[body, {**body, "eventId": "evt-2"}, body],
                           headers=bearer(api_key))
    assert await resp.json() == ok(1)
    assert sorted(d["event_id"] for d in await stored_events(store)) == ["evt-1", "evt-2"]


async def test_array_of_500_is_accepted(http: Client, api_key: str, store: Store) -> None:
    events = [{"name": "e", "anonymousId": f"a{i}"} for i in range(500)]
    resp = await http.post("/track", json=events, headers=bearer(api_key))
    assert await resp.json() == ok(500)
    assert len(await stored_events(store)) == 500


async def test_gzip_body_is_accepted(http: Client, api_key: str, store: Store) -> None:
    resp = await http.post("/track", data=gzip.compress(SEED_SINGLE),
                           headers={**bearer(api_key), "Content-Encoding": "gzip"})
    assert await resp.json() == ok(1)
    assert len(await stored_events(store)) == 1


# --- errors -------------------------------------------------------------------------------


async def test_empty_array_is_400(http: Client, api_key: str, store: Store) -> None:
    resp = await http.post("/track", data=b"[]", headers=bearer(api_key))
    assert resp.status == 400
    assert await resp.json() == INVALID
    assert await all_events(store) == []


async def test_one_invalid_event_rejects_the_whole_array(
    http: Client, api_key: str, store: Store
) -> None:
    events: list[Any] = [{"name": f"e{i}", "anonymousId": "a"} for i in range(5)]
    events[3] = {"name": "x" * 257}
    resp = await http.post("/track", json=events, headers=bearer(api_key))
    assert resp.status == 400
    assert await resp.json() == INVALID
    assert await all_events(store) == []


async def test_array_over_500_is_400(http: Client, api_key: str, store: Store) -> None:
    events = [{"name": "e", "anonymousId": "a"} for _ in range(501)]
    resp = await http.post("/track", json=events, headers=bearer(api_key))
    assert resp.status == 400
    assert await resp.json() == INVALID
    assert await all_events(store) == []


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def _in(days: float) -> int:
    return int((datetime.now(UTC) + timedelta(days=days)).timestamp() * 1000)


A = {"anonymousId": "a"}
BAD_BODIES: list[Any] = [
    pytest.param(b"not json", id="not-json"),
    pytest.param(b'{"name": "e", ', id="truncated"),
    pytest.param(b'{"name": "\xff\xfe"}', id="invalid-utf8"),
    pytest.param(b'{"name": "e", "anonymousId": "\\ud800"}', id="lone-surrogate"),
    pytest.param(b'"just a string"', id="string-body"),
    pytest.param(b"42", id="number-body"),
    pytest.param(b"null", id="null-body"),
    pytest.param({"anonymousId": "a"}, id="name-missing"),
    pytest.param({"name": "", **A}, id="name-empty"),
    pytest.param({"name": 42, **A}, id="name-number"),
    pytest.param({"name": None, **A}, id="name-null"),
    pytest.param({"name": "x" * 257, **A}, id="name-257"),
    pytest.param({"name": "e", "namespace": "n" * 65, **A}, id="namespace-65"),
    pytest.param({"name": "e", "anonymousId": "a" * 257}, id="anonymous-id-257"),
    pytest.param({"name": "e", "sessionId": "s" * 257, **A}, id="session-id-257"),
    pytest.param({"name": "e", "source": "s" * 65, **A}, id="source-65"),
    pytest.param({"name": "e", "profileId": "p" * 257}, id="profile-id-257"),
    pytest.param({"name": "e", "eventId": "e" * 257, **A}, id="event-id-257"),
    pytest.param({"name": "e", "websiteId": "not-a-uuid", **A}, id="website-id-not-uuid"),
    pytest.param({"name": "e", "websiteId": 7, **A}, id="website-id-number"),
    pytest.param({"name": "e", "anonymousId": 123}, id="anonymous-id-number"),
    pytest.param({"name": "e", "properties": [], **A}, id="properties-array"),
    pytest.param({"name": "e", "properties": "x", **A}, id="properties-string"),
    pytest.param({"name": "e", "properties": {f"k{i}": i for i in range(51)}, **A},
                 id="properties-51-keys"),
    pytest.param({"name": "e", "properties": {"k" * 129: 1}, **A}, id="property-key-129"),
    pytest.param({"name": "e", "properties": {"blob": "x" * (32 * 1024)}, **A},
                 id="properties-over-32KB"),
    pytest.param({"name": "e", "properties": {"big": 2**53 + 1}, **A}, id="integer-beyond-2^53"),
    pytest.param(b'{"name": "e", "anonymousId": "a", "properties": {"big": 1e400}}',
                 id="number-overflow"),
    pytest.param(b'{"name": "e", "anonymousId": "a", "properties": {"big": '
                 + b"9" * 400 + b"}}", id="400-digit-integer"),
    pytest.param({"name": "e", "properties": _nested(33), **A}, id="nested-33-deep"),
    pytest.param({"name": "e", "properties": _nested(150), **A}, id="nested-150-deep"),
    pytest.param(b'{"name": "e", "properties": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                 id="nested-5000-deep"),
    pytest.param({"name": "e", "properties": {"$set": 1}, **A}, id="property-key-dollar"),
    pytest.param({"name": "e", "timestamp": _in(2), **A}, id="timestamp-2-days-ahead"),
    pytest.param({"name": "e", "timestamp": "2999-01-01T00:00:00Z", **A},
                 id="timestamp-iso-far-future"),
    pytest.param({"name": "e", "timestamp": 1e300, **A}, id="timestamp-huge"),
    pytest.param({"name": "e", "timestamp": -1e300, **A}, id="timestamp-huge-negative"),
    pytest.param({"name": "e", "timestamp": "yesterday", **A}, id="timestamp-not-iso"),
    pytest.param({"name": "e", "timestamp": True, **A}, id="timestamp-boolean"),
    pytest.param({"name": "e", "timestamp": {}, **A}, id="timestamp-object"),
    pytest.param({"name": "e", "anonymizeVisitorIds": "yes", **A}, id="anonymize-not-auto"),
    pytest.param([{"name": "ok", **A}, 5], id="array-item-not-object"),
    pytest.param([[{"name": "ok", **A}]], id="nested-array"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_input_is_400_invalid_request_body(
    http: Client, api_key: str, store: Store, body: Any
) -> None:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = await http.post("/track", data=data, headers=bearer(api_key))
    assert resp.status == 400, await resp.text()
    assert await resp.json() == INVALID
    assert await all_events(store) == []


async def test_limits_are_inclusive(http: Client, api_key: str, store: Store) -> None:
    body = {"name": "x" * 256, "namespace": "n" * 64, "anonymousId": "a" * 256,
            "sessionId": "s" * 256, "source": "s" * 64, "profileId": "p" * 256,
            "properties": {f"{i:0128d}": i for i in range(50)}, "timestamp": _in(0.5)}
    resp = await http.post("/track", json=body, headers=bearer(api_key))
    assert await resp.json() == ok(1)
    assert len(await stored_events(store)) == 1


async def test_no_credentials_is_401(http: Client, store: Store) -> None:
    resp = await http.post("/track", data=SEED_SINGLE)
    assert resp.status == 401
    assert await resp.json() == error("API key or website_id required")
    assert await all_events(store) == []


async def test_invalid_key_is_401(http: Client, store: Store) -> None:
    for headers in (bearer("trk_unknown"), {"x-api-key": "trk_unknown"},
                    {"Authorization": "Basic dXNlcjpwYXNz"}):
        resp = await http.post("/track", data=SEED_SINGLE, headers=headers)
        assert resp.status == 401
        assert await resp.json() == error("Invalid API key")
    assert await all_events(store) == []


async def test_revoked_key_is_401(http: Client, store: Store) -> None:
    issued = await issue_key(store.keys, "acme", ("track:events",))
    assert (await http.post("/track", data=SEED_SINGLE, headers=bearer(issued.secret))).status \
        == 200
    await store.keys.revoke(issued.record.key_id)
    resp = await http.post("/track", data=SEED_SINGLE, headers=bearer(issued.secret))
    assert resp.status == 401
    assert await resp.json() == error("Invalid API key")
    assert len(await all_events(store)) == 1


async def test_key_without_scope_is_403(http: Client, make_key: KeyFactory, store: Store) -> None:
    key = await make_key(scopes=("users:read",))
    resp = await http.post("/track", data=SEED_SINGLE, headers=bearer(key))
    assert resp.status == 403
    assert await resp.json() == error("API key missing track:events scope")
    assert await all_events(store) == []


async def test_unknown_website_is_404(http: Client, store: Store) -> None:
    for website_id in (str(uuid.uuid4()), "not-a-uuid"):
        resp = await http.post(f"/track?website_id={website_id}", data=SEED_CLIENT_SIDE)
        assert resp.status == 404
        assert await resp.json() == error("Website not found")
    assert await all_events(store) == []


async def test_origin_not_in_the_websites_origins_is_403(http: Client, store: Store) -> None:
    website = await make_website(store)
    resp = await http.post(f"/track?website_id={website}", data=SEED_CLIENT_SIDE,
                           headers={"Origin": OTHER_ORIGIN})
    assert resp.status == 403
    assert await resp.json() == error("Origin not authorized")
    assert "Access-Control-Allow-Origin" not in resp.headers
    assert await all_events(store) == []


async def test_request_without_origin_needs_server_side_tracking(
    http: Client, store: Store
) -> None:
    website = await make_website(store, server_side=False)
    resp = await http.post(f"/track?website_id={website}", data=SEED_CLIENT_SIDE)
    assert resp.status == 403
    assert await resp.json() == error("Origin not authorized")
    assert await all_events(store) == []
    # The same website from a browser on its origin is fine.
    resp = await http.post(f"/track?website_id={website}", data=SEED_CLIENT_SIDE,
                           headers={"Origin": ORIGIN})
    assert await resp.json() == ok(1)


async def test_website_request_may_not_name_another_website(http: Client, store: Store) -> None:
    website, other = await make_website(store), await make_website(store)
    resp = await http.post(f"/track?website_id={website}",
                           json={"name": "e", "anonymousId": "a", "websiteId": other})
    assert resp.status == 403
    assert await resp.json() == error("API key not authorized for this website")
    assert await all_events(store) == []


async def test_key_of_another_project_naming_a_website_is_403_scope_mismatch(
    http: Client, make_key: KeyFactory, store: Store
) -> None:
    website_a = await make_website(store, "project-a")
    key_b = await make_key("project-b")
    resp = await http.post("/track", json={"name": "e", "anonymousId": "a",
                                           "websiteId": website_a}, headers=bearer(key_b))
    assert resp.status == 403
    assert await resp.json() == error("Website scope mismatch")
    # Through the query parameter too, and in an array where only one event names it.
    resp = await http.post(f"/track?website_id={website_a}", data=SEED_SINGLE,
                           headers=bearer(key_b))
    assert await resp.json() == error("Website scope mismatch")
    resp = await http.post("/track", json=[{"name": "e", "anonymousId": "a"},
                                           {"name": "e", "anonymousId": "a",
                                            "websiteId": website_a}], headers=bearer(key_b))
    assert await resp.json() == error("Website scope mismatch")
    assert await all_events(store) == []


async def test_key_limited_to_websites(http: Client, store: Store) -> None:
    allowed, other = await make_website(store), await make_website(store)
    key = (await issue_key(store.keys, "acme", ("track:events",), [allowed])).secret
    for body in ({"name": "e", "anonymousId": "a", "websiteId": other},
                 {"name": "e", "anonymousId": "a"}):
        resp = await http.post("/track", json=body, headers=bearer(key))
        assert resp.status == 403
        assert await resp.json() == error("API key not authorized for this website")
    assert await all_events(store) == []
    resp = await http.post("/track", json={"name": "e", "anonymousId": "a", "websiteId": allowed},
                           headers=bearer(key))
    assert await resp.json() == ok(1)
    resp = await http.post(f"/track?website_id={allowed}", json={"name": "f", "anonymousId": "a"},
                           headers=bearer(key))
    assert await resp.json() == ok(1)
    assert sorted((d["name"], d["website_id"]) for d in await stored_events(store)) == [
        ("e", allowed), ("f", allowed)]


async def test_body_over_5_mb_is_413(http: Client, api_key: str, store: Store) -> None:
    body = b"[" + b" " * (5 * 1024 * 1024) + b"]"
    resp = await http.post("/track", data=body, headers=bearer(api_key))
    assert resp.status == 413
    assert await resp.json() == error("Payload too large")
    bomb = gzip.compress(b"[" + b" " * (6 * 1024 * 1024) + b"]")
    resp = await http.post("/track", data=bomb,
                           headers={**bearer(api_key), "Content-Encoding": "gzip"})
    assert resp.status == 413
    assert await resp.json() == error("Payload too large")
    assert await all_events(store) == []


@pytest.fixture
def rate_limits() -> dict[str, RateLimit]:
    """``limited_http`` allows 2 Databuddy requests per key per minute."""
    return {"databuddy": RateLimit(2, 60)}


async def test_rate_limit_is_429_with_retry_after(
    limited_http: Client, make_key: KeyFactory, store: Store
) -> None:
    key, other_key = await make_key(), await make_key()
    for _ in range(2):
        assert await (await limited_http.post("/track", data=SEED_SINGLE,
                                              headers=bearer(key))).json() == ok(1)
    resp = await limited_http.post("/track", data=SEED_SINGLE, headers={"x-api-key": key})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert await resp.json() == error("Rate limit exceeded")
    # Another key has its own budget.
    assert (await limited_http.post("/track", data=SEED_SINGLE,
                                    headers=bearer(other_key))).status == 200
    assert len(await stored_events(store)) == 3


async def test_default_rate_limit_is_600_per_minute() -> None:
    from trackd.server.rate_limit_policy import DEFAULT_LIMITS

    assert DEFAULT_LIMITS["databuddy"] == RateLimit(600, 60)


async def test_not_durably_accepted_is_503_with_retry_after(
    http: Client, api_key: str, server: TrackdServer, store: Store
) -> None:
    await server.pipeline.close()  # the pipeline refuses writes, as during shutdown
    resp = await http.post("/track", data=SEED_SINGLE, headers=bearer(api_key))
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert await resp.json() == error("Service temporarily unavailable; retry later")
    assert await all_events(store) == []


# --- browsers: CORS and sendBeacon ----------------------------------------------------------


def preflight_headers(origin: str = ORIGIN) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"}


async def test_preflight_for_an_allowed_origin(http: Client, store: Store) -> None:
    website = await make_website(store, origins=(ORIGIN, "http://localhost:3000"))
    for path in ("/track", "/identify"):
        for origin in (ORIGIN, "http://localhost:3000"):
            resp = await http.options(f"{path}?website_id={website}",
                                      headers=preflight_headers(origin))
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == origin
            assert resp.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
            assert resp.headers["Access-Control-Allow-Headers"] == \
                "content-type, authorization, x-api-key"
            assert resp.headers["Access-Control-Max-Age"] == "86400"
            assert resp.headers["Vary"] == "Origin"
    assert await all_events(store) == []


async def test_preflight_denied(http: Client, store: Store) -> None:
    website = await make_website(store)
    cases = [
        (f"/track?website_id={website}", preflight_headers(OTHER_ORIGIN), 403,
         "Origin not authorized"),
        # Same host, another scheme or port, is another origin.
        (f"/track?website_id={website}", preflight_headers("http://shop.example.com"), 403,
         "Origin not authorized"),
        (f"/track?website_id={website}", preflight_headers("https://shop.example.com:8443"), 403,
         "Origin not authorized"),
        ("/track", preflight_headers(), 403, "Origin not authorized"),
        (f"/track?website_id={website}", {"Access-Control-Request-Method": "POST"}, 403,
         "Origin not authorized"),
        (f"/track?website_id={uuid.uuid4()}", preflight_headers(), 404, "Website not found"),
    ]
    for url, headers, status, message in cases:
        resp = await http.options(url, headers=headers)
        assert resp.status == status, url
        assert await resp.json() == error(message)
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_browser_response_carries_cors_headers(http: Client, store: Store) -> None:
    website = await make_website(store)
    resp = await http.post(f"/track?website_id={website}", data=SEED_CLIENT_SIDE,
                           headers={"Origin": ORIGIN, "Content-Type": "application/json"})
    assert await resp.json() == ok(1)
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert resp.headers["Vary"] == "Origin"
    # An error answered to an allowed origin carries it too, so the page can read it.
    resp = await http.post(f"/track?website_id={website}", data=b"[]",
                           headers={"Origin": ORIGIN})
    assert resp.status == 400
    assert await resp.json() == INVALID
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    (doc,) = await stored_events(store)
    assert doc["website_id"] == website


async def test_send_beacon_text_plain_body(http: Client, store: Store) -> None:
    website = await make_website(store)
    body = orjson.dumps([{"name": "page_exit", "anonymousId": "anon-9",
                          "properties": {"seconds": 31}}])
    resp = await http.post(f"/track?website_id={website}", data=body,
                           headers={"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"})
    assert resp.status == 200
    assert await resp.json() == ok(1)
    (doc,) = await stored_events(store)
    assert (doc["name"], doc["anonymous_id"], doc["properties"], doc["website_id"]) == (
        "page_exit", "anon-9", {"seconds": 31}, website)


# --- identify -------------------------------------------------------------------------------


async def test_identify_links_past_and_future_anonymous_events(
    http: Client, api_key: str, store: Store
) -> None:
    website = await make_website(store)
    before = [{"name": f"before_{i}", "anonymousId": "anon-1", "websiteId": website}
              for i in range(2)]
    assert await (await http.post("/track", json=before, headers=bearer(api_key))).json() \
        == ok(2)
    await http.post("/track", json={"name": "stranger", "anonymousId": "anon-2"},
                    headers=bearer(api_key))

    resp = await http.post("/identify", json={
        "profileId": "user-1", "anonymousId": "anon-1",
        "traits": {"plan": "pro", "seats": 3}, "websiteId": website}, headers=bearer(api_key))
    assert resp.status == 200
    assert await resp.json() == {"status": "success", "type": "identify"}

    assert await (await http.post("/track", json={"name": "after", "anonymousId": "anon-1"},
                                  headers=bearer(api_key))).json() == ok(1)
    owners = {d["name"]: d["user_id"] for d in await stored_events(store)}
    assert owners == {"before_0": "user-1", "before_1": "user-1", "stranger": None,
                      "after": "user-1"}
    user = await store.db["users"].find_one({"project_id": "acme", "external_id": "user-1"})
    assert user is not None
    assert user["traits"] == {"plan": "pro", "seats": 3}
    assert user["anonymous_ids"] == ["anon-1"]


async def test_identify_errors(http: Client, make_key: KeyFactory, store: Store) -> None:
    website = await make_website(store)
    key = await make_key()
    body = {"profileId": "user-1", "anonymousId": "anon-1", "websiteId": website}
    cases: list[tuple[Any, dict[str, str], int, str]] = [
        ({**body, "profileId": ""}, bearer(key), 400, "Invalid request body"),
        ({"profileId": "user-1"}, bearer(key), 400, "Invalid request body"),
        ({**body, "traits": {"a.b": 1}}, bearer(key), 400, "Invalid request body"),
        ({**body, "traits": []}, bearer(key), 400, "Invalid request body"),
        (body, {}, 401, "API key or website_id required"),
        (body, bearer("trk_nope"), 401, "Invalid API key"),
        (body, bearer(await make_key(scopes=("users:write",))), 403,
         "API key missing track:events scope"),
        (body, bearer(await make_key("project-b")), 403, "Website scope mismatch"),
    ]
    for payload, headers, status, message in cases:
        resp = await http.post("/identify", json=payload, headers=headers)
        assert resp.status == status, (payload, headers)
        assert await resp.json() == error(message)
    assert await store.db["users"].count_documents({}) == 0


# --- tenant isolation -------------------------------------------------------------------------


async def test_projects_are_isolated(http: Client, make_key: KeyFactory, store: Store) -> None:
    key_a, key_b = await make_key("project-a"), await make_key("project-b")
    for key in (key_a, key_b):
        body = {"name": "e", "anonymousId": "anon-1", "eventId": "same-id"}
        assert await (await http.post("/track", json=body, headers=bearer(key))).json() == ok(1)
    website_b = await make_website(store, "project-b")
    resp = await http.post("/identify", json={"profileId": "user-b", "anonymousId": "anon-1",
                                              "websiteId": website_b}, headers=bearer(key_b))
    assert resp.status == 200
    (doc_a,) = await stored_events(store, "project-a")
    (doc_b,) = await stored_events(store, "project-b")
    # Identifying anon-1 in project B leaves project A's anon-1 anonymous.
    assert (doc_a["event_id"], doc_a["user_id"]) == ("same-id", None)
    assert (doc_b["event_id"], doc_b["user_id"]) == ("same-id", "user-b")
    # A website id authenticates into its own project only.
    resp = await http.post(f"/track?website_id={website_b}",
                           json={"name": "w", "anonymousId": "anon-1"})
    assert await resp.json() == ok(1)
    assert [d["name"] for d in await stored_events(store, "project-a")] == ["e"]
    assert sorted(d["name"] for d in await stored_events(store, "project-b")) == ["e", "w"]
