"""The Segment dialect over real HTTP, a real gRPC server and the real database: what
each call stores, its refusals and limits (table-driven), and that a refused request
stores nothing."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import stored_events, stored_users
from trackd.gateway.dialects.segment import SEGMENT_MAX_BODY_BYTES
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def post(http: TestClient[Any, Any], path: str, body: Any,
               headers: dict[str, str]) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    response = await http.post(path, data=raw, headers={"Content-Type": "application/json",
                                                        **headers})
    return response.status, await response.json()


TRACK = {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m1"}


def invalid(message: str) -> dict[str, Any]:
    return {"success": False, "code": "invalid_request", "message": message}


REFUSALS: list[tuple[str, str, Any, int, dict[str, Any]]] = [
    ("not json", "/v1/batch", b"{nope", 400, invalid("request body is not valid JSON")),
    ("no batch", "/v1/batch", {}, 400, invalid("batch is required")),
    ("batch not a list", "/v1/batch", {"batch": {}}, 400, invalid("batch must be an array")),
    ("no type", "/v1/batch", {"batch": [{"userId": "u1", "event": "x"}]}, 400,
     invalid("batch[0].type is required")),
    ("unknown type", "/v1/batch", {"batch": [{**TRACK, "type": "screenshot"}]}, 400,
     invalid("batch[0].type input should be 'track', 'page', 'screen', 'identify', "
             "'group' or 'alias'")),
    ("no ids", "/v1/batch", {"batch": [TRACK, {"type": "track", "event": "x"}]}, 400,
     invalid("batch[1].userId or anonymousId is required")),
    ("no event", "/v1/track", {"userId": "u1"}, 400,
     invalid("event is required for a track call")),
    ("alias without previousId", "/v1/alias", {"userId": "u1"}, 400,
     invalid("previousId is required for an alias call")),
    ("group without groupId", "/v1/group", {"userId": "u1"}, 400,
     invalid("groupId is required for a group call")),
    ("clock-skew correction past year 9999", "/v1/track",
     {**TRACK, "originalTimestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"},
     400, invalid("originalTimestamp must be between 0001-01-01T00:00:00Z and "
                  "9999-12-31T23:59:59Z")),
    ("message id too long", "/v1/track", {**TRACK, "messageId": "m" * 257}, 400,
     invalid("messageId string should have at most 256 characters")),
    ("user id not a string", "/v1/track", {**TRACK, "userId": 7}, 400,
     invalid("userId must be a string")),
    ("bad timestamp", "/v1/track", {**TRACK, "timestamp": "yesterday"}, 400,
     invalid("timestamp must be an ISO-8601 date-time")),
    # The server's rules, named as the body names them (the identify at index 2).
    ("property key", "/v1/batch", {"batch": [TRACK, {**TRACK, "messageId": "m2",
                                                     "properties": {"$x": 1}}]}, 400,
     invalid("batch[1].properties.$x property keys must be non-empty, not start with '$' "
             "and not contain NUL")),
    ("trait key", "/v1/batch", {"batch": [TRACK, TRACK, {"type": "identify", "userId": "u1",
                                                         "traits": {"a.b": 1}}]}, 400,
     invalid("batch[2].traits.a.b trait keys must be non-empty and contain no '.', '$' "
             "or NUL")),
    # The library's own fields are kept as JSON: a number JSON bytes cannot hold is the
    # client's error (it was a 500).
    ("context integer beyond 64 bits", "/v1/track",
     orjson.dumps(TRACK)[:-1] + b',"context":{"n":%d}}' % 2**70,
     400, invalid("context holds an integer beyond 64 bits")),
]


@pytest.mark.parametrize(("path", "body", "status", "answer"),
                         [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
async def test_refusals_store_nothing(http: TestClient[Any, Any], api_key: str, store: Store,
                                      path: str, body: Any, status: int,
                                      answer: dict[str, Any]) -> None:
    assert await post(http, path, body, basic(api_key)) == (status, answer)
    assert await stored_events(store) == []
    assert await stored_users(store) == []


KEYS: list[tuple[str, dict[str, str], Any, int, dict[str, Any]]] = [
    ("no key", {}, {"batch": [TRACK]}, 401,
     {"success": False, "code": "unauthorized",
      "message": "missing write key: send it as the Basic user name or as writeKey"}),
    ("not base64", {"Authorization": "Basic !!"}, {"batch": [TRACK]}, 401,
     {"success": False, "code": "unauthorized",
      "message": "malformed Authorization header: expected Basic base64(<write key>:)"}),
    ("wrong key", basic("trk_wrong"), {"batch": [TRACK]}, 401,
     {"success": False, "code": "unauthorized", "message": "invalid or revoked API key"}),
    ("wrong body key", {}, {"batch": [TRACK], "writeKey": "trk_wrong"}, 401,
     {"success": False, "code": "unauthorized", "message": "invalid or revoked API key"}),
    # Without a key, an invalid body is still a 401: nothing is said about the body.
    ("no key, bad body", {}, {"batch": 3}, 401,
     {"success": False, "code": "unauthorized",
      "message": "missing write key: send it as the Basic user name or as writeKey"}),
]


@pytest.mark.parametrize(("headers", "body", "status", "answer"),
                         [case[1:] for case in KEYS], ids=[case[0] for case in KEYS])
async def test_keys(http: TestClient[Any, Any], store: Store, headers: dict[str, str],
                    body: Any, status: int, answer: dict[str, Any]) -> None:
    assert await post(http, "/v1/batch", body, headers) == (status, answer)
    assert await stored_events(store) == []


async def test_body_limit(http: TestClient[Any, Any], api_key: str, store: Store) -> None:
    padding = "x" * (SEGMENT_MAX_BODY_BYTES - 100)
    body = orjson.dumps({"batch": [{**TRACK, "properties": {"p": padding}}]})
    assert len(body) > SEGMENT_MAX_BODY_BYTES
    status, answer = await post(http, "/v1/batch", body, basic(api_key))
    assert (status, answer) == (413, {
        "success": False, "code": "payload_too_large",
        "message": f"request body exceeds the limit of {SEGMENT_MAX_BODY_BYTES} bytes"})
    assert await stored_events(store) == []


async def test_every_call_and_what_it_stores(http: TestClient[Any, Any], api_key: str,
                                             store: Store) -> None:
    sent_at = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)
    batch = {"writeKey": api_key, "sentAt": sent_at.isoformat(),
             "context": {"library": {"name": "analytics-python"}}, "batch": [
        {"type": "page", "anonymousId": "a1", "name": "Home", "category": "Web",
         "properties": {"path": "/"}, "messageId": "p1",
         "originalTimestamp": (sent_at - timedelta(seconds=10)).isoformat()},
        {"type": "screen", "anonymousId": "a1", "name": "Settings", "messageId": "s1",
         "timestamp": "2026-01-01T00:00:00Z", "integrations": {"All": False}},
        {"type": "track", "userId": None, "anonymousId": "a2", "event": "Clicked",
         "messageId": "t1", "context": {"ip": "10.0.0.1"}, "_metadata": {"v": 1}},
        {"type": "identify", "userId": "u1", "anonymousId": "a1",
         "context": {"traits": {"email": "ada@example.com"}}},
        {"type": "alias", "userId": "u1", "previousId": "a2"},
        {"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}},
        {"type": "identify", "anonymousId": "a3", "traits": {"ignored": True}},
    ]}
    before = datetime.now(UTC)
    assert await post(http, "/v1/batch", batch, {}) == (200, {"success": True})
    after = datetime.now(UTC)
    # Gzipped JSON labelled as a form, as RudderStack's Node SDK sends it; resent: once.
    resent = gzip.compress(orjson.dumps(batch))
    response = await http.post("/v1/batch", data=resent, headers={
        **basic(api_key), "Content-Encoding": "gzip",
        "Content-Type": "application/x-www-form-urlencoded"})
    assert (response.status, await response.json()) == (200, {"success": True})

    docs = {doc["event_id"]: doc for doc in await stored_events(store)}
    assert sorted(docs) == ["p1", "s1", "t1"]
    page, screen, track = docs["p1"], docs["s1"], docs["t1"]
    assert (page["name"], page["user_id"], page["anonymous_id"], page["properties"]) == (
        "Loaded a Page", "u1", "a1", {"path": "/", "name": "Home", "category": "Web"})
    # originalTimestamp corrected by sentAt: received - (sentAt - originalTimestamp).
    assert before - timedelta(seconds=10) <= page["timestamp"].replace(tzinfo=UTC) \
        <= after - timedelta(seconds=10)
    assert orjson.loads(page["client_context"]) == {
        "context": {"library": {"name": "analytics-python"}}}
    assert (screen["name"], screen["properties"]) == ("Loaded a Screen", {"name": "Settings"})
    assert screen["timestamp"] == datetime(2026, 1, 1, tzinfo=UTC)
    assert orjson.loads(screen["client_context"]) == {
        "context": {"library": {"name": "analytics-python"}}, "integrations": {"All": False}}
    assert (track["name"], track["user_id"], track["anonymous_id"]) == ("Clicked", "u1", "a2")
    assert track["properties"] == {}
    assert orjson.loads(track["client_context"]) == {
        "context": {"ip": "10.0.0.1"}, "_metadata": {"v": 1}}
    assert all(api_key not in str(doc) for doc in docs.values())
    (user,) = await stored_users(store)
    assert user["external_id"] == "u1"
    assert user["traits"] == {"email": "ada@example.com", "groupId": "g1",
                              "group": {"name": "Acme"}}
    assert sorted(user["anonymous_ids"]) == ["a1", "a2"]


@pytest.mark.parametrize("kind", ["track", "page", "screen", "identify", "group", "alias"])
async def test_single_call_routes(http: TestClient[Any, Any], api_key: str, store: Store,
                                  kind: str) -> None:
    body = {"userId": "u1", "anonymousId": "a1", "event": "Bought", "name": "N",
            "groupId": "g1", "previousId": "a0", "messageId": f"{kind}-1",
            "type": "track"}  # the route decides the type, not the body
    assert await post(http, f"/v1/{kind}", body, basic(api_key)) == (200, {"success": True})
    names = [doc["name"] for doc in await stored_events(store)]
    assert names == {"track": ["Bought"], "page": ["Loaded a Page"],
                     "screen": ["Loaded a Screen"]}.get(kind, [])
    users = await stored_users(store)
    assert [u["external_id"] for u in users] == ([] if kind in ("track", "page", "screen")
                                                 else ["u1"])


@pytest.fixture
def rate_limits() -> dict[str, RateLimit]:
    """``limited_http`` allows 2 Segment calls per minute per key."""
    return {"segment": RateLimit(2, 60)}


async def test_rate_limit_is_429_in_segments_envelope(
    limited_http: TestClient[Any, Any], api_key: str, store: Store
) -> None:
    for index in range(2):
        body = {"batch": [{**TRACK, "messageId": f"m{index}"}]}
        assert await post(limited_http, "/v1/batch", body, basic(api_key)) == (
            200, {"success": True})
    response = await limited_http.post("/v1/batch", headers=basic(api_key),
                                       json={"batch": [{**TRACK, "messageId": "m9"}]})
    assert response.status == 429
    assert await response.json() == {
        "success": False, "code": "rate_limited",
        "message": "rate limit exceeded: 2 requests per 60 s per key; "
                   f"retry in {response.headers['Retry-After']} s"}
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["RateLimit-Policy"] == '"segment";q=2;w=60'
    assert sorted(doc["event_id"] for doc in await stored_events(store)) == ["m0", "m1"]
