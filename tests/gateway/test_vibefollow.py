"""VibeFollow over real HTTP: the gateway on port 0, the real gRPC server, the real database."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import KeyFactory, stored_events
from trackd.server.app import ServerConfig, TrackdServer
from trackd.storage import Store

Client = TestClient[Any, Any]

# The seed's example request, verbatim (vibefollow-track-event.txt).
SEED_EVENT = b"""{
  "external_user_id": "usr_42",
  "name": "user_signed_up",
  "properties": {
    "plan": "trial",
    "source": "organic"
  }
}"""
SEED_IDEMPOTENCY_KEY = "7b6c7e9e-2c2d-4a8d-9d3a-4f3d2c1b0a99"
# The seed's batch example, verbatim (vibefollow-batch-track.txt).
SEED_BATCH = b"""{
  "events": [
    {
      "external_user_id": "usr_42",
      "name": "user_signed_up",
      "properties": { "plan": "trial" }
    },
    {
      "external_user_id": "usr_42",
      "name": "trial_started",
      "properties": { "trialDays": 14 }
    }
  ]
}"""
ACCEPTED = {"data": {"accepted": True}}


def headers(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **extra}


def event(i: int, **fields: Any) -> dict[str, Any]:
    return {"external_user_id": f"usr_{i}", "name": "feature_used",
            "properties": {"feature": "export", "n": i}, **fields}


async def test_seed_event_is_accepted_and_stored_once(
    http: Client, api_key: str, store: Store
) -> None:
    resp = await http.post("/api/v1/events", data=SEED_EVENT,
                           headers=headers(api_key, **{"Idempotency-Key": SEED_IDEMPOTENCY_KEY}))
    assert resp.status == 202
    assert resp.content_type == "application/json"
    assert await resp.json() == ACCEPTED

    docs = await stored_events(store)
    assert len(docs) == 1
    doc = docs[0]
    assert doc["project_id"] == "acme"
    assert doc["name"] == "user_signed_up"
    assert doc["user_id"] == "usr_42"
    assert doc["anonymous_id"] is None
    assert doc["properties"] == {"plan": "trial", "source": "organic"}
    assert doc["event_id"]
    assert doc["timestamp"] == doc["received_at"]


async def test_seed_batch_is_accepted_and_stored(http: Client, api_key: str, store: Store) -> None:
    resp = await http.post("/api/v1/events/batch", data=SEED_BATCH,
                           headers=headers(api_key, **{"Idempotency-Key": SEED_IDEMPOTENCY_KEY}))
    assert resp.status == 202
    assert await resp.json() == ACCEPTED
    docs = await stored_events(store)
    assert sorted((d["name"], d["properties"]) for d in docs) == [
        ("trial_started", {"trialDays": 14}), ("user_signed_up", {"plan": "trial"})]


async def test_batch_of_500_is_accepted(http: Client, api_key: str, store: Store) -> None:
    body = {"events": [event(i) for i in range(500)]}
    resp = await http.post("/api/v1/events/batch", json=body, headers=headers(api_key))
    assert resp.status == 202
    assert len(await stored_events(store)) == 500


async def test_batch_of_501_is_rejected_whole(http: Client, api_key: str, store: Store) -> None:
    body = {"events": [event(i) for i in range(501)]}
    resp = await http.post("/api/v1/events/batch", json=body, headers=headers(api_key))
    assert resp.status == 422
    assert await resp.json() == {"errors": [{
        "code": "validation_failed",
        "message": "events a batch holds 1 to 500 events, got 501",
        "field": "events"}]}
    assert await stored_events(store) == []


async def test_empty_batch_is_rejected(http: Client, api_key: str, store: Store) -> None:
    resp = await http.post("/api/v1/events/batch", json={"events": []}, headers=headers(api_key))
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "events"


async def test_one_bad_event_rejects_the_whole_batch(
    http: Client, api_key: str, store: Store
) -> None:
    events = [event(i) for i in range(6)]
    del events[3]["external_user_id"]
    resp = await http.post("/api/v1/events/batch", json={"events": events},
                           headers=headers(api_key))
    assert resp.status == 422
    assert await resp.json() == {"errors": [{
        "code": "validation_failed",
        "message": "events[3].external_user_id is required",
        "field": "events[3].external_user_id"}]}
    assert await stored_events(store) == []


async def test_server_side_limit_in_a_batch_names_the_indexed_field(
    http: Client, api_key: str, store: Store
) -> None:
    events = [event(i) for i in range(4)]
    events[2]["properties"] = {"feature": "export", **{f"k{i}": i for i in range(100)}}
    resp = await http.post("/api/v1/events/batch", json={"events": events},
                           headers=headers(api_key))
    assert resp.status == 422
    error = (await resp.json())["errors"][0]
    assert error["field"] == "events[2].properties"
    assert "100" in error["message"]
    assert await stored_events(store) == []


async def test_wrong_types_are_named(http: Client, api_key: str, store: Store) -> None:
    cases = [
        ({"external_user_id": 42, "name": "x"}, "external_user_id", "must be a string"),
        ({"external_user_id": "u", "name": ""}, "name", "must not be empty"),
        ({"external_user_id": "u", "name": "x", "properties": []}, "properties",
         "must be an object"),
        ({"external_user_id": "u", "name": "x", "properties": {"big": 2**60}}, "properties.big",
         "is an integer beyond ±2^53; send it as a string to keep every digit"),
        ({"external_user_id": "u" * 257, "name": "x"}, "external_user_id",
         "must be at most 256 characters"),
    ]
    for body, field, description in cases:
        resp = await http.post("/api/v1/events", json=body, headers=headers(api_key))
        assert resp.status == 422, body
        assert await resp.json() == {"errors": [{
            "code": "validation_failed", "message": f"{field} {description}", "field": field}]}
    assert await stored_events(store) == []


async def test_non_json_body_is_400(http: Client, api_key: str, store: Store) -> None:
    for body in (b"not json", b'{"external_user_id": "u", "name": ', b"\xff\xfe{}"):
        resp = await http.post("/api/v1/events", data=body, headers=headers(api_key))
        assert resp.status == 400
        assert await resp.json() == {"errors": [{
            "code": "invalid_request", "message": "request body is not valid JSON"}]}
    assert await stored_events(store) == []


async def test_body_over_5_mb_is_413(http: Client, api_key: str, store: Store) -> None:
    body = b'{"events": [' + b" " * (5 * 1024 * 1024) + b"]}"
    resp = await http.post("/api/v1/events/batch", data=body, headers=headers(api_key))
    assert resp.status == 413
    assert await resp.json() == {"errors": [{
        "code": "payload_too_large",
        "message": "request body exceeds the limit of 5242880 bytes"}]}
    assert await stored_events(store) == []


async def test_missing_malformed_and_invalid_keys_are_401(
    http: Client, store: Store, make_key: KeyFactory
) -> None:
    missing = {"code": "unauthorized",
               "message": "missing or malformed Authorization header: expected 'Bearer <key>'"}
    for auth in (None, "Basic dXNlcjpwYXNz", "Bearer ", "trk_nobearer"):
        hdrs = {} if auth is None else {"Authorization": auth}
        resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=hdrs)
        assert resp.status == 401, auth
        assert await resp.json() == {"errors": [missing]}

    resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=headers("trk_unknown"))
    assert resp.status == 401
    assert await resp.json() == {"errors": [
        {"code": "unauthorized", "message": "invalid or revoked API key"}]}
    assert await stored_events(store) == []


async def test_revoked_key_is_401(http: Client, store: Store) -> None:
    from trackd.server.auth import issue_key

    issued = await issue_key(store.keys, "acme")
    resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=headers(issued.secret))
    assert resp.status == 202
    assert await store.keys.revoke(issued.record.key_id)
    resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=headers(issued.secret))
    assert resp.status == 401
    assert (await resp.json())["errors"][0]["code"] == "unauthorized"
    assert len(await stored_events(store)) == 1


async def test_key_without_scope_is_403(http: Client, make_key: KeyFactory, store: Store) -> None:
    key = await make_key(scopes=())
    resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=headers(key))
    assert resp.status == 403
    assert await resp.json() == {"errors": [
        {"code": "forbidden", "message": "API key missing track:events scope"}]}
    assert await stored_events(store) == []


async def test_idempotent_replay_writes_once(http: Client, api_key: str, store: Store) -> None:
    hdrs = headers(api_key, **{"Idempotency-Key": SEED_IDEMPOTENCY_KEY})
    # The same JSON value, formatted differently, is the same request.
    for body in (SEED_EVENT, b'{"name":"user_signed_up","external_user_id":"usr_42",'
                             b'"properties":{"source":"organic","plan":"trial"}}'):
        resp = await http.post("/api/v1/events", data=body, headers=hdrs)
        assert resp.status == 202
        assert await resp.json() == ACCEPTED
    assert len(await stored_events(store)) == 1


async def test_idempotency_key_reuse_with_another_body_is_422(
    http: Client, api_key: str, store: Store
) -> None:
    hdrs = headers(api_key, **{"Idempotency-Key": SEED_IDEMPOTENCY_KEY})
    assert (await http.post("/api/v1/events", data=SEED_EVENT, headers=hdrs)).status == 202
    resp = await http.post("/api/v1/events", json=event(7), headers=hdrs)
    assert resp.status == 422
    assert await resp.json() == {"errors": [{
        "code": "idempotency_key_reuse",
        "message": "Idempotency-Key was already used with a different request",
        "field": "Idempotency-Key"}]}
    assert [d["user_id"] for d in await stored_events(store)] == ["usr_42"]


async def test_idempotency_key_over_255_chars_is_422(
    http: Client, api_key: str, store: Store
) -> None:
    resp = await http.post("/api/v1/events", data=SEED_EVENT,
                           headers=headers(api_key, **{"Idempotency-Key": "k" * 256}))
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "Idempotency-Key"
    assert await stored_events(store) == []


async def test_idempotent_batch_replay_without_event_ids_writes_once(
    http: Client, api_key: str, store: Store
) -> None:
    hdrs = headers(api_key, **{"Idempotency-Key": "batch-1"})
    for _ in range(3):
        resp = await http.post("/api/v1/events/batch", data=SEED_BATCH, headers=hdrs)
        assert resp.status == 202
    assert len(await stored_events(store)) == 2


async def test_duplicate_event_id_is_stored_once(http: Client, api_key: str, store: Store) -> None:
    for _ in range(3):
        resp = await http.post("/api/v1/events", json=event(1, event_id="evt_1"),
                               headers=headers(api_key))
        assert resp.status == 202
    docs = await stored_events(store)
    assert [d["event_id"] for d in docs] == ["evt_1"]


async def test_concurrent_requests_share_inserts(
    http: Client, api_key: str, store: Store, server: TrackdServer
) -> None:
    async def send(i: int) -> int:
        resp = await http.post("/api/v1/events", json=event(i), headers=headers(api_key))
        return resp.status

    statuses = await asyncio.gather(*(send(i) for i in range(100)))
    assert statuses == [202] * 100
    docs = await stored_events(store)
    assert sorted(d["user_id"] for d in docs) == sorted(f"usr_{i}" for i in range(100))
    assert server.pipeline.stats.events_written == 100
    # Group commit: far fewer database inserts than requests.
    assert server.pipeline.stats.flushes <= 25


async def test_keys_of_one_project_never_write_into_another(
    http: Client, make_key: KeyFactory, store: Store
) -> None:
    key_a, key_b = await make_key("project-a"), await make_key("project-b")
    for key in (key_a, key_b):
        resp = await http.post("/api/v1/events", json=event(1, event_id="same-id"),
                               headers=headers(key))
        assert resp.status == 202
    docs_a = await stored_events(store, "project-a")
    docs_b = await stored_events(store, "project-b")
    assert [d["event_id"] for d in docs_a] == ["same-id"]
    assert [d["event_id"] for d in docs_b] == ["same-id"]
    assert await store.db["events"].count_documents({}) == 2


async def test_timestamp_and_event_id_extensions(http: Client, api_key: str, store: Store) -> None:
    body = event(1, event_id="e-1", timestamp="2024-01-15T10:30:00+02:00")
    resp = await http.post("/api/v1/events", json=body, headers=headers(api_key))
    assert resp.status == 202
    (doc,) = await stored_events(store)
    assert doc["event_id"] == "e-1"
    assert doc["timestamp"].isoformat() == "2024-01-15T08:30:00+00:00"


async def test_unavailable_server_is_503_with_retry_after(
    http: Client, api_key: str, server: TrackdServer, store: Store
) -> None:
    await server.pipeline.close()  # the pipeline refuses writes, as during shutdown
    resp = await http.post("/api/v1/events", data=SEED_EVENT, headers=headers(api_key))
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["errors"][0]["code"] == "service_unavailable"
    assert await stored_events(store) == []


async def test_gzip_body_is_accepted(http: Client, api_key: str, store: Store) -> None:
    resp = await http.post("/api/v1/events", data=gzip.compress(SEED_EVENT),
                           headers=headers(api_key, **{"Content-Encoding": "gzip"}))
    assert resp.status == 202
    assert len(await stored_events(store)) == 1


async def test_gzip_bomb_is_413_naming_the_limit(http: Client, api_key: str, store: Store) -> None:
    # 6 MB of spaces compress to a few KB; the limit applies after decompression.
    bomb = gzip.compress(b'{"events": [' + b" " * (6 * 1024 * 1024) + b"]}")
    assert len(bomb) < 64 * 1024
    resp = await http.post("/api/v1/events/batch", data=bomb,
                           headers=headers(api_key, **{"Content-Encoding": "gzip"}))
    assert resp.status == 413
    assert await resp.json() == {"errors": [{
        "code": "payload_too_large",
        "message": "request body exceeds the limit of 5242880 bytes"}]}
    assert await stored_events(store) == []


async def test_rate_limit_is_429_with_retry_after_per_key(
    server_config: ServerConfig, make_key: KeyFactory, store: Store
) -> None:
    from tests.helpers import limited_gateway
    from trackd.server.rate_limit_policy import RateLimit

    key_a, key_b = await make_key(), await make_key()
    async with limited_gateway(store, server_config, {"vibefollow": RateLimit(2, 60)}) as client:
        for i in range(2):
            resp = await client.post("/api/v1/events", json=event(i), headers=headers(key_a))
            assert resp.status == 202
        resp = await client.post("/api/v1/events", json=event(2), headers=headers(key_a))
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert await resp.json() == {"errors": [{
            "code": "rate_limited",
            "message": "rate limit exceeded: 2 requests per 60 s per key; "
                       f"retry in {resp.headers['Retry-After']} s"}]}
        # Another key has its own budget.
        resp = await client.post("/api/v1/events", json=event(3), headers=headers(key_b))
        assert resp.status == 202
    assert sorted(d["user_id"] for d in await stored_events(store)) == ["usr_0", "usr_1", "usr_3"]
