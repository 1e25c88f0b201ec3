"""The Amplitude dialect over real HTTP, a real gRPC server and the real database: what
it stores, its refusals and limits (table-driven, in the shapes the SDK reads to decide
what to resend), and that a refused request stores nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import stored_events, stored_users
from trackd.gateway.dialects.amplitude import AMPLITUDE_MAX_BODY_BYTES, AMPLITUDE_MAX_EVENTS
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store

Client = TestClient[Any, Any]
EVENT = {"event_type": "clicked", "user_id": "user-1", "insert_id": "i-1"}
KEY_RULE = "property keys must be non-empty, not start with '$' and not contain NUL"


async def post(http: Client, path: str, body: Any) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    response = await http.post(path, data=raw, headers={"Content-Type": "application/json"})
    return response.status, await response.json()


def bad(error: str, **more: Any) -> dict[str, Any]:
    return {"code": 400, "error": error, **more}


REFUSALS: list[tuple[str, Any, int, dict[str, Any]]] = [
    ("no key", {"events": [EVENT]}, 400, bad("Invalid API key: none was sent (api_key in "
                                             "the body)")),
    ("wrong key", {"api_key": "trk_wrong", "events": [EVENT]}, 400,
     bad("Invalid API key: unknown or revoked")),
    ("not json", b"{", 400, bad("Invalid API key: none was sent (api_key in the body)")),
    ("no events", {"api_key": "KEY"}, 400, bad("events is required", missing_field="events")),
    ("empty events", {"api_key": "KEY", "events": []}, 400,
     bad("events must hold at least one event", missing_field="events")),
    ("no event_type", {"api_key": "KEY", "events": [EVENT, {"user_id": "user-1"}]}, 400,
     bad("events[1].event_type is required",
         events_with_missing_fields={"event_type": [1]})),
    ("no ids", {"api_key": "KEY", "events": [{"event_type": "x"}]}, 400,
     bad("events[0].user_id is required", events_with_missing_fields={"user_id": [0]})),
    ("short id", {"api_key": "KEY", "events": [{**EVENT, "user_id": "abc"}]}, 400,
     bad("events[0].user_id must be at least 5 characters",
         events_with_invalid_id_lengths={"user_id": [0]})),
    ("time not ms", {"api_key": "KEY", "events": [{**EVENT, "time": "now"}]}, 400,
     bad("events[0].time must be an integer", events_with_invalid_fields={"time": [0]})),
    ("time with a fraction", {"api_key": "KEY", "events": [{**EVENT, "time": 1.5}]}, 400,
     bad("events[0].time must be an integer", events_with_invalid_fields={"time": [0]})),
    ("time out of range", {"api_key": "KEY", "events": [{**EVENT, "time": 10**16}]}, 400,
     bad("events[0].time must be Unix milliseconds within years 1-9999",
         events_with_invalid_fields={"time": [0]})),
    ("$add refused", {"api_key": "KEY", "events": [
        {**EVENT, "user_properties": {"$add": {"logins": 1}}}]}, 400,
     bad("events[0].user_properties.$add is an operation trackd does not apply (only $set, "
         "$setOnce and $unset)", events_with_invalid_fields={"user_properties": [0]})),
    ("server rule", {"api_key": "KEY", "events": [
        EVENT, {**EVENT, "insert_id": "i-2", "event_properties": {"$x": 1}}]}, 400,
     bad(f"events[1].event_properties.$x {KEY_RULE}",
         events_with_invalid_fields={"event_properties": [1]})),
    ("too many events", {"api_key": "KEY", "events": [EVENT] * (AMPLITUDE_MAX_EVENTS + 1)},
     413, {"code": 413, "error": f"Payload too large: at most {AMPLITUDE_MAX_EVENTS} "
                                 "events a request"}),
]


@pytest.mark.parametrize("route", ["/2/httpapi", "/batch"])
@pytest.mark.parametrize(("body", "status", "answer"), [case[1:] for case in REFUSALS],
                         ids=[case[0] for case in REFUSALS])
async def test_refusals_store_nothing(http: Client, api_key: str, store: Store, route: str,
                                      body: Any, status: int, answer: dict[str, Any]) -> None:
    if not isinstance(body, bytes):
        body = orjson.loads(orjson.dumps(body).replace(b'"KEY"', orjson.dumps(api_key)))
    assert await post(http, route, body) == (status, answer)
    assert await stored_events(store) == []
    assert await stored_users(store) == []


async def test_the_http_api_takes_1_mb(http: Client, api_key: str, store: Store) -> None:
    padding = "x" * AMPLITUDE_MAX_BODY_BYTES["/2/httpapi"]
    body = {"api_key": api_key, "events": [{**EVENT, "event_properties": {"p": padding}}]}
    assert await post(http, "/2/httpapi", body) == (413, {
        "code": 413, "error": "Payload too large: at most 1048576 bytes"})
    assert await stored_events(store) == []


async def test_what_is_stored(http: Client, api_key: str, store: Store) -> None:
    body = {"api_key": api_key, "options": {"min_id_length": 1}, "events": [
        {"event_type": "viewed", "device_id": "d", "insert_id": "v1", "time": 1_700_000_000_123,
         "event_properties": {"plan": "pro"}, "platform": "Web", "session_id": 42},
        {"event_type": "$identify", "user_id": "u", "user_properties": {
            "$set": {"email": "ada@example.com"}, "$setOnce": {"first": "a"},
            "plan": "pro"}},
        {"event_type": "$identify", "user_id": "u",
         "user_properties": {"$unset": {"plan": "-"}, "$setOnce": {"first": "b"}}},
        {"event_type": "paid", "user_id": "u", "device_id": "d", "insert_id": "p1",
         "revenue": 9.99},
        {"event_type": "$groupidentify", "user_id": "u", "groups": {"org": "acme"}},
    ]}
    status, answer = await post(http, "/2/httpapi", body)
    assert status == 200
    assert answer["code"] == 200
    assert answer["events_ingested"] == 2
    assert answer["payload_size_bytes"] == len(orjson.dumps(body))
    assert isinstance(answer["server_upload_time"], int)
    docs = {doc["event_id"]: doc for doc in await stored_events(store)}
    assert sorted(docs) == ["p1", "v1"]
    viewed = docs["v1"]
    assert (viewed["name"], viewed["user_id"], viewed["anonymous_id"],
            viewed["properties"]) == ("viewed", "u", "d", {"plan": "pro"})
    assert viewed["timestamp"].timestamp() == 1_700_000_000.123
    assert orjson.loads(viewed["client_context"]) == {"platform": "Web", "session_id": 42}
    assert orjson.loads(docs["p1"]["client_context"]) == {"revenue": 9.99}
    (user,) = await stored_users(store)
    assert (user["external_id"], user["traits"], user["anonymous_ids"]) == (
        "u", {"email": "ada@example.com", "first": "a"}, ["d"])


@pytest.fixture
def rate_limits() -> dict[str, RateLimit]:
    """``limited_http`` allows 2 Amplitude calls per minute per key."""
    return {"amplitude": RateLimit(2, 60)}


async def test_rate_limit_is_429_with_every_event_throttled(limited_http: Client,
                                                            api_key: str,
                                                            store: Store) -> None:
    for index in range(2):
        body = {"api_key": api_key, "events": [{**EVENT, "insert_id": f"r{index}"}]}
        assert (await post(limited_http, "/batch", body))[0] == 200
    response = await limited_http.post("/batch", json={
        "api_key": api_key, "events": [{**EVENT, "insert_id": "r9"}]})
    assert response.status == 429
    body = await response.json()
    assert (body["code"], body["throttled_events"]) == (429, [])
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert sorted(doc["event_id"] for doc in await stored_events(store)) == ["r0", "r1"]
