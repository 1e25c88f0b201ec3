"""The Mixpanel dialect over real HTTP, a real gRPC server and the real database: the
``/track`` path it shares with Databuddy, each route's key, the body forms, refusals and
limits (table-driven), and that a refused request stores nothing."""

from __future__ import annotations

import base64
import gzip
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.helpers import stored_events, stored_users
from trackd.gateway.dialects.mixpanel import MIXPANEL_MAX_MESSAGES
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store

Client = TestClient[Any, Any]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
KEY_RULE = "property keys must be non-empty, not start with '$' and not contain NUL"


def event(key: str, insert_id: str = "m1", **properties: Any) -> dict[str, Any]:
    return {"event": "clicked", "properties": {"token": key, "distinct_id": "u1",
                                               "$insert_id": insert_id, **properties}}


async def form(http: Client, path: str, data: Any, *, verbose: bool = True,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    fields = {"data": data if isinstance(data, str) else orjson.dumps(data).decode()}
    if verbose:
        fields["verbose"] = "1"
    response = await http.post(path, data=urlencode(fields), headers={**FORM,
                                                                      **(headers or {})})
    return response.status, await response.json()


def refused(error: str) -> dict[str, Any]:
    return {"status": 0, "error": error}


# (id, path, data (KEY: the key), status, answer)
REFUSALS: list[tuple[str, str, Any, int, dict[str, Any]]] = [
    ("no token", "/track", {"event": "x", "properties": {"distinct_id": "u1"}}, 401,
     refused("token is required (properties.token, or $token on /engage)")),
    ("wrong token", "/track", event("trk_wrong"), 401, refused("invalid or revoked API key")),
    ("not json", "/track", "{nope", 400, refused("data must be JSON (or base64 of JSON)")),
    ("no event", "/track", [event("KEY"), {"properties": {"token": "KEY"}}], 400,
     refused("data[1].event is required")),
    ("no distinct_id", "/track", {"event": "x", "properties": {"token": "KEY"}}, 400,
     refused("data.properties.distinct_id is required")),
    ("time not a number", "/track", event("KEY", time="now"), 400,
     refused("data.properties.time must be Unix seconds (a number)")),
    ("too many", "/track", [event("KEY", f"m{i}") for i in range(51)], 413,
     refused("data holds more than 50 messages")),
    ("identify without anon", "/track", {"event": "$identify", "properties": {
        "token": "KEY", "$identified_id": "u1"}}, 400,
     refused("data.properties.$anon_id is required")),
    ("nested $ key", "/track", [event("KEY"), event("KEY", "m2", a={"$b": 1})], 400,
     refused(f"data[1].properties.a.$b {KEY_RULE}")),
    ("engage $add", "/engage", {"$token": "KEY", "$distinct_id": "u1", "$add": {"n": 1}},
     400, refused("data.$add is an operation trackd does not apply (only $set, $set_once "
                  "and $unset)")),
    ("engage no id", "/engage", {"$token": "KEY", "$set": {"a": 1}}, 400,
     refused("data.$distinct_id is required")),
    ("engage trait key", "/engage", {"$token": "KEY", "$distinct_id": "u1",
                                     "$set": {"a.b": 1}}, 400,
     refused("data.$set.a.b trait keys must be non-empty and contain no '.', '$' or NUL")),
]


def with_key(data: Any, key: str) -> Any:
    if isinstance(data, str):
        return data
    return orjson.loads(orjson.dumps(data).replace(b'"KEY"', orjson.dumps(key)))


@pytest.mark.parametrize(("path", "data", "status", "answer"),
                         [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
async def test_refusals_store_nothing(http: Client, api_key: str, store: Store, path: str,
                                      data: Any, status: int, answer: dict[str, Any]) -> None:
    assert await form(http, path, with_key(data, api_key)) == (status, answer)
    assert await stored_events(store) == []
    assert await stored_users(store) == []


async def test_without_verbose_the_answer_is_1_or_0(http: Client, api_key: str) -> None:
    assert await form(http, "/track", event(api_key), verbose=False) == (200, 1)
    assert await form(http, "/track", event("trk_wrong"), verbose=False) == (401, 0)


async def test_track_is_mixpanels_for_a_form_and_databuddys_otherwise(
    http: Client, api_key: str, store: Store
) -> None:
    assert await form(http, "/track", event(api_key, "form")) == (
        200, {"status": 1, "error": None})
    # data= without a form Content-Type (a hand-written client): still Mixpanel's.
    raw = "data=" + orjson.dumps(event(api_key, "bare")).decode() + "&verbose=1"
    response = await http.post("/track", data=raw, headers={"Content-Type": "text/plain"})
    assert (response.status, await response.json()) == (200, {"status": 1, "error": None})
    # base64 data, as older Mixpanel libraries send it.
    encoded = base64.b64encode(orjson.dumps(event(api_key, "b64"))).decode()
    assert await form(http, "/track", encoded) == (200, {"status": 1, "error": None})
    # JSON: Databuddy's, in Databuddy's envelope.
    response = await http.post("/track", json={"name": "x", "profileId": "u1"},
                               headers={"Authorization": f"Bearer {api_key}"})
    assert await response.json() == {"status": "success", "type": "custom_event", "count": 1}
    response = await http.post("/track", data=b"{nope",
                               headers={"Authorization": f"Bearer {api_key}"})
    assert (response.status, await response.json()) == (
        400, {"status": "error", "message": "Invalid request body"})
    # A form whose gzip is truncated: Mixpanel's envelope, as its Content-Type says.
    response = await http.post("/track", data=gzip.compress(b"x")[:-4], headers={
        **FORM, "Content-Encoding": "gzip"})
    body = await response.json()
    assert (response.status, body["status"]) == (400, 0)
    docs = await stored_events(store)
    assert sorted(doc["event_id"] for doc in docs if doc["name"] == "clicked") == [
        "b64", "bare", "form"]
    assert [doc["user_id"] for doc in docs if doc["name"] == "x"] == ["u1"]


async def test_import_and_engage_and_linking(http: Client, api_key: str,
                                            store: Store) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(f"{api_key}:".encode()).decode()}
    imported = [{"event": "old", "properties": {"distinct_id": "anon-1", "time": 1_700_000_000,
                                                "$insert_id": "i1", "mp_lib": "python"}},
                {"event": "older", "properties": {"distinct_id": "alias-1",
                                                  "time": 1_700_000_000_500,
                                                  "$insert_id": "i2"}}]
    assert await form(http, "/import", imported, headers=basic) == (
        200, {"status": 1, "error": None})
    assert await form(http, "/track", [
        {"event": "$identify", "properties": {"token": api_key, "$anon_id": "anon-1",
                                              "$identified_id": "u1"}},
        {"event": "$create_alias", "properties": {"token": api_key, "distinct_id": "alias-1",
                                                  "alias": "u1"}}]) == (
        200, {"status": 1, "error": None})
    assert await form(http, "/engage", [
        {"$token": api_key, "$distinct_id": "u1", "$set": {"plan": "pro", "$email": "x"}},
        {"$token": api_key, "$distinct_id": "u1", "$set_once": {"plan": "free", "n": 1}},
        {"$token": api_key, "$distinct_id": "u1", "$unset": ["n"]}]) == (
        200, {"status": 1, "error": None})
    docs = {doc["event_id"]: doc for doc in await stored_events(store)}
    assert {key: doc["user_id"] for key, doc in docs.items()} == {"i1": "u1", "i2": "u1"}
    assert docs["i1"]["timestamp"].timestamp() == 1_700_000_000
    assert docs["i2"]["timestamp"].timestamp() == 1_700_000_000.5  # milliseconds
    assert orjson.loads(docs["i1"]["client_context"]) == {"mp_lib": "python"}
    (user,) = await stored_users(store)
    assert (user["external_id"], user["traits"]) == ("u1", {"plan": "pro"})


@pytest.mark.parametrize("path", ["/track", "/engage", "/import"])
async def test_message_limits(http: Client, api_key: str, store: Store, path: str) -> None:
    limit = MIXPANEL_MAX_MESSAGES[path]
    one = ({"$token": api_key, "$distinct_id": "u1", "$set": {"a": 1}} if path == "/engage"
           else event(api_key))
    status, _ = await form(http, path, [one] * limit)
    assert status == 200
    assert await form(http, path, [one] * (limit + 1)) == (
        413, refused(f"data holds more than {limit} messages"))


@pytest.fixture
def rate_limits() -> dict[str, RateLimit]:
    """``limited_http`` allows 2 Mixpanel calls per minute per key."""
    return {"mixpanel": RateLimit(2, 60)}


async def test_rate_limit(limited_http: Client, api_key: str, store: Store) -> None:
    for index in range(2):
        assert (await form(limited_http, "/track", event(api_key, f"r{index}")))[0] == 200
    status, answer = await form(limited_http, "/track", event(api_key, "r9"))
    assert (status, answer["status"]) == (429, 0)
    assert sorted(doc["event_id"] for doc in await stored_events(store)) == ["r0", "r1"]
