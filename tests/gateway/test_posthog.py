"""The PostHog dialect over real HTTP, a real gRPC server and the real database: each
body form and route, the user calls, refusals and limits (table-driven), and that a
refused request stores nothing."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import stored_events, stored_users
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store

Client = TestClient[Any, Any]


async def post(http: Client, path: str, body: Any,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    response = await http.post(path, data=raw, headers={"Content-Type": "application/json",
                                                        **(headers or {})})
    return response.status, await response.json()


def invalid(detail: str, attr: str | None) -> dict[str, Any]:
    return {"type": "validation_error", "code": "invalid_request", "detail": detail,
            "attr": attr}


EVENT = {"event": "clicked", "distinct_id": "u1", "uuid": "e1"}
KEY_RULE = "property keys must be non-empty, not start with '$' and not contain NUL"

# (id, body with KEY where the key goes, status, answer)
REFUSALS: list[tuple[str, Any, int, dict[str, Any]]] = [
    ("not json", b"{nope", 401, {
        "type": "authentication_error", "code": "unauthorized",
        "detail": "API key is required: send it as api_key in the body", "attr": None}),
    ("no event", {"api_key": "KEY", "batch": [EVENT, {"distinct_id": "u1"}]}, 400,
     invalid("batch[1].event is required", "batch[1].event")),
    ("no distinct id", {"api_key": "KEY", "batch": [{"event": "x"}]}, 400,
     invalid("batch[0].distinct_id is required", "batch[0].distinct_id")),
    ("batch not a list", {"api_key": "KEY", "batch": {}}, 400,
     invalid("batch must be an array", "batch")),
    ("event not an object", {"api_key": "KEY", "batch": [3]}, 400,
     invalid("batch[0] must be an object", "batch[0]")),
    ("uuid too long", {"api_key": "KEY", **EVENT, "uuid": "x" * 257}, 400,
     invalid("uuid string should have at most 256 characters", "uuid")),
    ("bad timestamp", {"api_key": "KEY", **EVENT, "timestamp": "soon"}, 400,
     invalid("timestamp must be an ISO-8601 date-time", "timestamp")),
    ("$set not an object", {"api_key": "KEY", **EVENT, "$set": [1]}, 400,
     invalid("$set must be an object", "$set")),
    ("$unset not names", {"api_key": "KEY", **EVENT, "properties": {"$unset": "a"}}, 400,
     invalid("$unset must be an array of property names", "$unset")),
    ("alias without alias", {"api_key": "KEY", "batch": [
        {"event": "$create_alias", "distinct_id": "a1", "properties": {}}]}, 400,
     invalid("batch[0].properties.alias is required for $create_alias",
             "batch[0].properties.alias")),
    # The server's rules, named as the body names them.
    ("nested $ key", {"api_key": "KEY", "batch": [
        EVENT, {**EVENT, "uuid": "e2", "properties": {"a": {"$b": 1}}}]}, 400,
     invalid(f"batch[1].properties.a.$b {KEY_RULE}", "batch[1].properties.a.$b")),
    ("trait key", {"api_key": "KEY", "batch": [EVENT, {
        "event": "$identify", "distinct_id": "u1", "properties": {"$set": {"a.b": 1}}}]},
     400, invalid("batch[1].$set.a.b trait keys must be non-empty and contain no '.', '$' "
                  "or NUL", "batch[1].$set.a.b")),
    ("no key", {"batch": [EVENT]}, 401, {
        "type": "authentication_error", "code": "unauthorized",
        "detail": "API key is required: send it as api_key in the body", "attr": None}),
    ("wrong key", {"api_key": "trk_wrong", "batch": [EVENT]}, 401, {
        "type": "authentication_error", "code": "unauthorized",
        "detail": "invalid or revoked API key", "attr": None}),
]


def with_key(body: Any, key: str) -> Any:
    if isinstance(body, bytes):
        return body
    return orjson.loads(orjson.dumps(body).replace(b'"KEY"', orjson.dumps(key)))


@pytest.mark.parametrize(("body", "status", "answer"), [case[1:] for case in REFUSALS],
                         ids=[case[0] for case in REFUSALS])
async def test_refusals_store_nothing(http: Client, api_key: str, store: Store, body: Any,
                                      status: int, answer: dict[str, Any]) -> None:
    assert await post(http, "/batch/", with_key(body, api_key)) == (status, answer)
    assert await stored_events(store) == []
    assert await stored_users(store) == []


@pytest.mark.parametrize("path", ["/batch/", "/capture/", "/e/", "/i/v0/e/"])
async def test_every_body_form_on_every_route(http: Client, api_key: str, store: Store,
                                              path: str) -> None:
    forms: list[tuple[Any, dict[str, str], str]] = [
        ({"api_key": api_key, "batch": [{**EVENT, "uuid": "b1"}]}, {}, ""),
        ({**EVENT, "uuid": "s1", "api_key": api_key}, {}, ""),
        ({**EVENT, "uuid": "t1", "token": api_key}, {}, ""),
        ([{**EVENT, "uuid": "a1", "properties": {"token": api_key, "x": 1}}], {}, ""),
        ({"api_key": api_key, "batch": [{**EVENT, "uuid": "g1"}]},
         {"Content-Encoding": "gzip"}, "gzip"),
        ([{**EVENT, "uuid": "j1", "properties": {"token": api_key}}], {}, "gzip-js"),
    ]
    for body, headers, compression in forms:
        raw = orjson.dumps(body)
        if compression:
            raw = gzip.compress(raw)
        url = f"{path}?compression=gzip-js" if compression == "gzip-js" else path
        assert await post(http, url, raw, headers) == (200, {"status": 1}), body
    docs = await stored_events(store)
    assert sorted(doc["event_id"] for doc in docs) == ["a1", "b1", "g1", "j1", "s1", "t1"]
    by_id = {doc["event_id"]: doc for doc in docs}
    assert by_id["a1"]["properties"] == {"x": 1}  # the token is never stored
    assert all(api_key not in str(doc) for doc in docs)


async def test_user_calls_and_what_they_store(http: Client, api_key: str,
                                              store: Store) -> None:
    batch = {"api_key": api_key, "sent_at": "2026-01-01T00:00:00Z", "batch": [
        {"event": "viewed", "distinct_id": "anon-1", "uuid": "v1",
         "timestamp": "2024-01-15T10:30:00+01:00",
         "properties": {"plan": "pro", "$lib": "web",
                        "$set_once": {"$initial_referrer": "$direct"}}},
        {"event": "earlier", "distinct_id": "old-1", "uuid": "o1"},
        {"event": "$identify", "distinct_id": "u1", "properties": {
            "$anon_distinct_id": "anon-1", "$set": {"email": "ada@example.com"},
            "$set_once": {"first": "a"}}},
        {"event": "$set", "distinct_id": "u1", "$set": {"plan": "pro"},
         "$set_once": {"first": "b"}},
        {"event": "$set", "distinct_id": "u1", "properties": {"$unset": ["plan"]}},
        {"event": "$create_alias", "distinct_id": "old-1", "properties": {"alias": "u1"}},
        {"event": "paid", "distinct_id": "u1", "uuid": "p1",
         "properties": {"$set": {"paying": True}}},
        {"event": "$groupidentify", "distinct_id": "u1",
         "properties": {"$group_type": "company", "$group_key": "acme"}},
    ]}
    assert await post(http, "/batch/", batch) == (200, {"status": 1})
    docs = {doc["event_id"]: doc for doc in await stored_events(store)}
    assert sorted(docs) == ["o1", "p1", "v1"]
    viewed = docs["v1"]
    assert (viewed["name"], viewed["user_id"], viewed["properties"]) == (
        "viewed", "u1", {"plan": "pro"})
    assert viewed["timestamp"] == datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
    assert orjson.loads(viewed["client_context"]) == {"$lib": "web"}
    assert docs["o1"]["user_id"] == "u1"
    users = await stored_users(store)
    # PostHog's own person properties ($initial_referrer) are not traits.
    assert [(u["external_id"], u["traits"]) for u in users] == [
        ("u1", {"email": "ada@example.com", "first": "a", "paying": True})]


async def test_an_identified_earlier_id_is_not_merged(http: Client, api_key: str,
                                                     store: Store) -> None:
    """PostHog refuses to merge a person that was identified itself; so does trackd."""
    batch = {"api_key": api_key, "batch": [
        {"event": "$identify", "distinct_id": "first-user"},
        {"event": "x", "distinct_id": "first-user", "uuid": "f1"},
    ]}
    assert await post(http, "/batch/", batch) == (200, {"status": 1})
    merge = {"api_key": api_key, "event": "$identify", "distinct_id": "second-user",
             "properties": {"$anon_distinct_id": "first-user"}}
    assert await post(http, "/capture/", merge) == (200, {"status": 1})
    (doc,) = await stored_events(store)
    assert doc["user_id"] == "first-user"


@pytest.fixture
def rate_limits() -> dict[str, RateLimit]:
    """``limited_http`` allows 2 PostHog calls per minute per key."""
    return {"posthog": RateLimit(2, 60)}


async def test_rate_limit_is_429_in_posthogs_envelope(limited_http: Client, api_key: str,
                                                     store: Store) -> None:
    for index in range(2):
        body = {"api_key": api_key, "batch": [{**EVENT, "uuid": f"r{index}"}]}
        assert await post(limited_http, "/batch/", body) == (200, {"status": 1})
    response = await limited_http.post("/batch/", json={"api_key": api_key,
                                                        "batch": [{**EVENT, "uuid": "r9"}]})
    assert response.status == 429
    body = await response.json()
    assert (body["type"], body["code"], body["attr"]) == ("throttled", "rate_limited", None)
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert sorted(doc["event_id"] for doc in await stored_events(store)) == ["r0", "r1"]
