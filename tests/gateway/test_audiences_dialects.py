"""Audiences over events from every API: the dialects and gRPC all key events to the
same user by external id, so all of them count, over real HTTP, gRPC and database.

Events here carry no timestamp of their own (or a recent one), and the rules look at
counts and presence only, so the evaluation's "now" never matters.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.server.helpers import auth as grpc_auth
from tests.server.helpers import event, track
from trackd.storage import Store
from trackd.v1 import tracking_pb2_grpc, users_pb2, users_pb2_grpc

pytestmark = pytest.mark.both_audience_paths

Client = TestClient[Any, Any]
EVALUATE = "/api/v1/audiences/evaluate"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def rules(*items: dict[str, Any]) -> dict[str, Any]:
    """An audience of one group."""
    return {"groups": [{"rules": list(items)}]}


async def evaluate(http: Client, key: str, audience: dict[str, Any]) -> list[str]:
    """The whole audience (one page), checked for a consistent total."""
    resp = await http.post(EVALUATE, headers=bearer(key), json=audience)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["data"]["total"] == len(body["data"]["externalIds"])
    assert body["data"]["nextCursor"] is None
    ids: list[str] = body["data"]["externalIds"]
    return ids


async def match(http: Client, key: str, external_id: str,
                audience: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = await http.post(f"/api/v1/contacts/{external_id}/match", headers=bearer(key),
                           json=audience)
    body: dict[str, Any] = await resp.json()
    return resp.status, body


def matched(external_id: str, matches: bool) -> tuple[int, dict[str, Any]]:
    return 200, {"data": {"externalId": external_id, "matches": matches}}


NOT_FOUND = (404, {"error": "Contact not found"})


async def create_contact(http: Client, key: str, external_id: str, **fields: Any) -> None:
    resp = await http.post("/api/v1/contacts", headers=bearer(key),
                           json={"email": f"{external_id}@example.com",
                                 "externalId": external_id, **fields})
    assert resp.status == 201, await resp.text()


async def user_event_count(store: Store, external_id: str, name: str) -> int:
    return await store.db["events"].count_documents(
        {"project_id": "acme", "user_id": external_id, "name": name})


# --- one user, five sources -------------------------------------------------------------------


async def test_events_from_every_api_count_for_the_same_user(
    http: Client, key: str, store: Store, tracking: tracking_pb2_grpc.TrackingServiceStub
) -> None:
    await create_contact(http, key, "ada")
    await create_contact(http, key, "bob")
    name = "report_exported"

    async def vibefollow() -> None:
        resp = await http.post("/api/v1/events", headers=bearer(key),
                               json={"external_user_id": "ada", "name": name})
        assert resp.status == 202

    async def flywheel() -> None:
        resp = await http.post("/v1/events", headers={"Authorization": key, "Auth-Type": "api"},
                               json={"event": {"event": name, "user_id": "ada"}})
        assert resp.status == 200

    async def databuddy() -> None:
        resp = await http.post("/track", headers=bearer(key),
                               json={"name": name, "profileId": "ada"})
        assert await resp.json() == {"status": "success", "type": "custom_event", "count": 1}

    async def cueflow() -> None:
        resp = await http.post("/api/v1/events", headers=bearer(key),
                               json={"externalId": "ada", "eventKey": name})
        assert resp.status == 201

    async def segment() -> None:
        resp = await http.post("/v1/batch", headers=bearer(key),
                               json={"batch": [{"type": "track", "userId": "ada",
                                                "event": name}]})
        assert await resp.json() == {"success": True}

    async def posthog() -> None:
        resp = await http.post("/batch/", json={
            "api_key": key, "batch": [{"event": name, "distinct_id": "ada"}]})
        assert await resp.json() == {"status": 1}

    async def amplitude() -> None:
        resp = await http.post("/2/httpapi", json={
            "api_key": key, "options": {"min_id_length": 1},
            "events": [{"event_type": name, "user_id": "ada"}]})
        assert (await resp.json())["code"] == 200

    async def mixpanel() -> None:
        data = orjson.dumps({"event": name, "properties": {"token": key,
                                                           "distinct_id": "ada"}})
        resp = await http.post("/track", data={"data": data.decode(), "verbose": "1"})
        assert await resp.json() == {"status": 1, "error": None}

    async def grpc_call() -> None:
        await tracking.TrackEvent(track(event(name, user="ada")), metadata=grpc_auth(key))

    more_than_eight = rules({"event": name, "op": "count_greater_than", "count": 8})
    has_done = rules({"event": name, "op": "has_done"})
    sources = (vibefollow, flywheel, databuddy, cueflow, segment, posthog, amplitude,
               mixpanel, grpc_call)
    for sent, source in enumerate(sources, start=1):
        assert await evaluate(http, key, more_than_eight) == []
        assert await match(http, key, "ada", more_than_eight) == matched("ada", False)
        await source()
        assert await user_event_count(store, "ada", name) == sent
        assert await evaluate(http, key, has_done) == ["ada"]
    assert await evaluate(http, key, more_than_eight) == ["ada"]
    assert await match(http, key, "ada", more_than_eight) == matched("ada", True)
    assert await match(http, key, "bob", more_than_eight) == matched("bob", False)
    assert await evaluate(http, key, rules({"event": name, "op": "has_not_done"})) == ["bob"]
    assert await evaluate(http, key, rules({"event": name, "op": "last_done_within",
                                            "within": "1d"})) == ["ada"]


async def test_flywheel_and_databuddy_timestamps_place_events_in_windows(
    http: Client, key: str
) -> None:
    """Dialects that carry an event time: it, not the receive time, is what windows see."""
    await create_contact(http, key, "ada")
    resp = await http.post("/v1/events", headers={"Authorization": key, "Auth-Type": "api"},
                           json={"event": {"event": "renewed", "user_id": "ada",
                                           "timestamp": "2024-01-15T10:30:00Z"}})
    assert resp.status == 200
    resp = await http.post("/track", headers=bearer(key), json={
        "name": "renewed", "profileId": "ada", "timestamp": 1_706_000_000_000})  # 2024-01-23
    assert resp.status == 200
    in_january = {"event": "renewed", "op": "count_greater_than", "count": 1,
                  "since": "2024-01-15T10:30:00Z", "before": "2024-02-01T00:00:00Z"}
    assert await evaluate(http, key, rules(in_january)) == ["ada"]
    after_first = {**in_january, "since": "2024-01-15T10:30:00.001Z", "count": 0}
    assert await evaluate(http, key, rules(after_first)) == ["ada"]
    assert await evaluate(http, key, rules({**after_first, "count": 1})) == []
    assert await evaluate(http, key, rules({"event": "renewed", "op": "last_done_within",
                                            "within": "1d"})) == []


# --- events before the user ---------------------------------------------------------------------


async def test_buffered_vibefollow_events_count_after_the_upsert(
    http: Client, key: str, store: Store
) -> None:
    for _ in range(3):
        resp = await http.post("/api/v1/events", headers=bearer(key),
                               json={"external_user_id": "usr_42", "name": "feature_used",
                                     "properties": {"feature": "export"}})
        assert resp.status == 202
    assert await user_event_count(store, "usr_42", "feature_used") == 3
    audience = rules({"event": "feature_used", "op": "count_greater_than", "count": 2})
    # No profile yet: nobody matches, and the contact is not found.
    assert await evaluate(http, key, audience) == []
    assert await match(http, key, "usr_42", audience) == NOT_FOUND

    resp = await http.post("/api/v1/users", headers=bearer(key),
                           json={"external_user_id": "usr_42",
                                 "traits": {"plan": "trial", "signupDate": "2024-01-15",
                                            "workspaceId": "ws_9"}})
    assert resp.status == 202
    assert await evaluate(http, key, audience) == ["usr_42"]
    assert await match(http, key, "usr_42", audience) == matched("usr_42", True)
    with_plan = rules({"event": "feature_used", "op": "has_done"},
                      {"property": "plan", "op": "equals", "value": "trial"})
    assert await evaluate(http, key, with_plan) == ["usr_42"]
    # VibeFollow's signupDate is the profile's signed_up_at; its workspaceId a trait.
    assert await evaluate(http, key, rules(
        {"property": "signedUpAt", "op": "date_before", "before": "2024-01-15T00:00:01Z"},
        {"property": "signup_date", "op": "date_before", "before": "2024-01-16T00:00:00Z"},
        {"property": "workspace_id", "op": "equals", "value": "ws_9"})) == ["usr_42"]
    assert await evaluate(http, key, rules(
        {"property": "signupDate", "op": "date_before", "before": "2024-01-15T00:00:00Z"})) \
        == []


async def test_databuddy_identify_links_earlier_anonymous_events(
    http: Client, key: str, store: Store
) -> None:
    website = str(uuid.uuid4())
    await store.websites.insert(website, "acme", ["https://shop.example.com"],
                                allow_server_side=True)
    batch = [{"name": "pricing_viewed", "anonymousId": "anon-1", "websiteId": website}
             for _ in range(2)]
    resp = await http.post("/track", headers=bearer(key), json=batch)
    assert await resp.json() == {"status": "success", "type": "custom_event", "count": 2}
    audience = rules({"event": "pricing_viewed", "op": "count_greater_than", "count": 1})
    assert await evaluate(http, key, audience) == []

    resp = await http.post("/identify", headers=bearer(key), json={
        "profileId": "user-1", "anonymousId": "anon-1", "websiteId": website,
        "traits": {"workspaceId": "ws_1"}})
    assert await resp.json() == {"status": "success", "type": "identify"}
    assert await user_event_count(store, "user-1", "pricing_viewed") == 2
    assert await evaluate(http, key, audience) == ["user-1"]
    assert await match(http, key, "user-1", audience) == matched("user-1", True)
    # The identify traits are properties too, in either spelling.
    assert await evaluate(http, key, rules(
        {"property": "workspace_id", "op": "equals", "value": "ws_1"})) == ["user-1"]


async def test_upsert_with_anonymous_ids_links_earlier_events(
    http: Client, key: str, channel: grpc.aio.Channel
) -> None:
    resp = await http.post("/v1/events", headers={"Authorization": key, "Auth-Type": "api"},
                           json={"event": {"event": "signup_started", "anonymous_id": "anon-7"}})
    assert resp.status == 200
    audience = rules({"event": "signup_started", "op": "has_done"})
    assert await evaluate(http, key, audience) == []
    users = users_pb2_grpc.UserServiceStub(channel)
    await users.UpsertUser(users_pb2.UpsertUserRequest(user=users_pb2.User(
        external_id="u-7", anonymous_ids=["anon-7"])), metadata=grpc_auth(key))
    assert await evaluate(http, key, audience) == ["u-7"]


# --- deletion ----------------------------------------------------------------------------------


async def test_deleted_contact_never_matches_again(
    http: Client, key: str, store: Store
) -> None:
    await create_contact(http, key, "gone", plan="pro")
    await create_contact(http, key, "kept", plan="pro")
    for user in ("gone", "kept"):
        resp = await http.post("/api/v1/events", headers=bearer(key),
                               json={"externalId": user, "eventKey": "login"})
        assert resp.status == 201
    has_done = rules({"event": "login", "op": "has_done"})
    pro = rules({"property": "plan", "op": "equals", "value": "pro"})
    assert await evaluate(http, key, has_done) == ["gone", "kept"]

    resp = await http.delete("/api/v1/contacts/gone", headers=bearer(key))
    assert await resp.json() == {"data": {"deleted": True, "externalId": "gone",
                                          "deletedEvents": 1}}
    assert await user_event_count(store, "gone", "login") == 0
    assert await evaluate(http, key, has_done) == ["kept"]
    assert await evaluate(http, key, pro) == ["kept"]
    assert await evaluate(http, key, rules({"event": "login", "op": "has_not_done"})) == []
    assert await match(http, key, "gone", has_done) == NOT_FOUND

    # The same id again is a new contact with an empty history.
    await create_contact(http, key, "gone")
    assert await evaluate(http, key, has_done) == ["kept"]
    assert await evaluate(http, key, rules({"event": "login", "op": "has_not_done"})) \
        == ["gone"]
    assert await match(http, key, "gone", has_done) == matched("gone", False)
    assert await evaluate(http, key, pro) == ["kept"]  # the old profile is gone too
