"""The official Mixpanel Python SDK (``mixpanel``, PyPI, the dev extra), unchanged but for
its endpoint URLs and project token, against a live gateway and gRPC server: track,
``$identify`` (Mixpanel's linking), a page view, profile updates, a buffered batch of
several hundred, a resent batch stored once, ``import_data``, and a wrong token; then
exactly what the database holds.

The SDK sends synchronously (``Consumer``) or on ``flush`` (``BufferedConsumer``, 50
messages a request), on the calling thread: each call runs in a worker thread so the
event loop serving the gateway keeps running. Its ``alias()`` always posts to Mixpanel's
own host (a new ``Consumer()``), so it cannot be pointed at trackd: ``$create_alias`` is
covered by tests/gateway/test_mixpanel.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from mixpanel import BufferedConsumer, Consumer, Mixpanel, MixpanelException

from tests.helpers import stored_events, stored_users
from trackd.storage import Store

BATCH = 300


def endpoints(http: TestClient[Any, Any]) -> dict[str, str]:
    return {"events_url": str(http.make_url("/track")),
            "people_url": str(http.make_url("/engage")),
            "import_url": str(http.make_url("/import"))}


def _drive(http: TestClient[Any, Any], token: str) -> None:
    mp = Mixpanel(token, consumer=Consumer(**endpoints(http), retry_limit=0))
    mp.track("anon-mp", "viewed pricing", {"plan": "pro", "$insert_id": "mp-pricing",
                                           "$device_id": "anon-mp"})
    mp.track("anon-mp", "$mp_web_page_view", {"current_page_title": "Install",
                                              "$insert_id": "mp-page"})
    mp.track("user-mp", "$identify", {"$anon_id": "anon-mp", "$identified_id": "user-mp"})
    mp.people_set("user-mp", {"email": "mp@example.com", "$name": "Ada"})
    mp.people_set_once("user-mp", {"first_seen": "pricing"})
    mp.people_set_once("user-mp", {"first_seen": "never applied"})
    mp.track("user-mp", "signed up", {"seats": 3, "$insert_id": "mp-signup",
                                      "time": 1_767_225_600})
    mp.import_data(None, "user-mp", "imported", 1_700_000_000,
                   {"$insert_id": "mp-imported"}, api_secret=token)
    buffered = BufferedConsumer(**endpoints(http), retry_limit=0)
    batch = Mixpanel(token, consumer=buffered)
    for round_ in range(2):  # the same $insert_ids twice: stored once
        for i in range(BATCH):
            batch.track("user-mp", "bulk", {"i": i, "round": round_,
                                            "$insert_id": f"mp-bulk-{i}"})
        buffered.flush()


async def test_sdk_against_trackd(http: TestClient[Any, Any], api_key: str,
                                  store: Store) -> None:
    await asyncio.to_thread(_drive, http, api_key)
    docs = await stored_events(store)
    assert len(docs) == 4 + BATCH
    by_id = {doc["event_id"]: doc for doc in docs}
    pricing = by_id["mp-pricing"]
    # $identify joined the anonymous distinct_id's history to the user's.
    assert (pricing["name"], pricing["user_id"], pricing["anonymous_id"],
            pricing["properties"]) == ("viewed pricing", "user-mp", "anon-mp", {"plan": "pro"})
    context = orjson.loads(pricing["client_context"])
    assert context["mp_lib"] == "python"
    assert "$lib_version" in context
    page = by_id["mp-page"]
    assert (page["name"], page["user_id"], page["properties"]) == (
        "$mp_web_page_view", "user-mp", {"current_page_title": "Install"})
    signup = by_id["mp-signup"]
    assert (signup["properties"], signup["timestamp"].timestamp()) == ({"seats": 3},
                                                                       1_767_225_600)
    assert by_id["mp-imported"]["timestamp"].timestamp() == 1_700_000_000
    bulk = [doc for doc in docs if doc["name"] == "bulk"]
    assert sorted(doc["properties"]["i"] for doc in bulk) == list(range(BATCH))
    assert all(doc["properties"]["round"] == 0 for doc in bulk)
    assert all(api_key not in str(doc) for doc in docs)
    (user,) = await stored_users(store)
    assert user["external_id"] == "user-mp"
    # Mixpanel's own profile properties ($name) are not traits.
    assert user["traits"] == {"email": "mp@example.com", "first_seen": "pricing"}


async def test_wrong_token_is_reported(http: TestClient[Any, Any], store: Store) -> None:
    mp = Mixpanel("not-a-key", consumer=Consumer(**endpoints(http), retry_limit=0))
    with pytest.raises(MixpanelException) as caught:
        await asyncio.to_thread(mp.track, "user-1", "nope")
    assert str(caught.value) == "Mixpanel error: invalid or revoked API key"
    assert await stored_events(store) == []
