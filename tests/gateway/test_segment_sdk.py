"""The official Segment and RudderStack SDKs, unchanged but for host and write key,
against a live gateway and gRPC server: track, identify, alias, page, a batch of several
hundred, a resent batch stored once, and a wrong key; then exactly what the database
holds.

Python: ``segment-analytics-python`` and ``rudder-sdk-python`` (PyPI, the dev extra),
whose clients queue in memory and send from a consumer thread: each test flushes and
shuts its client down explicitly (in a worker thread, so the event loop serving the
gateway keeps running). Node: ``@segment/analytics-node`` and
``@rudderstack/rudder-sdk-node`` (pinned in package.json), run as real Node processes by
``segment_sdk.mjs``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.helpers import stored_events, stored_users
from tests.processes import ROOT, run_for_json
from trackd.storage import Store

SCRIPT = Path(__file__).with_name("segment_sdk.mjs")
NODE = shutil.which("node")
TIMEOUT_SECONDS = 180.0  # a bound for a stuck process, never asserted on
BATCH = 300


def _drive(client: Any, errors: list[Any], tag: str) -> None:
    """The SDK's calls, in the order an app makes them; blocking (run in a thread)."""
    anonymous, user = f"anon-{tag}", f"user-{tag}"
    client.track(anonymous_id=anonymous, event="Viewed Pricing",
                 properties={"plan": "pro"}, message_id=f"{tag}-pricing")
    client.page(anonymous_id=anonymous, category="Docs", name="Install",
                properties={"path": "/install"}, message_id=f"{tag}-page")
    client.identify(user_id=user, anonymous_id=anonymous,
                    traits={"email": f"{tag}@example.com", "plan": "pro"},
                    message_id=f"{tag}-identify")
    client.alias(previous_id=f"old-{tag}", user_id=user, message_id=f"{tag}-alias")
    client.track(user_id=user, event="Signed Up", properties={"seats": 3},
                 timestamp=None, message_id=f"{tag}-signup")
    client.flush()
    for round_ in range(2):  # the same message ids twice: stored once
        for i in range(BATCH):
            client.track(user_id=user, event="Bulk", properties={"i": i, "round": round_},
                         message_id=f"{tag}-bulk-{i}")
        client.flush()
    client.shutdown()


def _client(kind: str, host: str, key: str, errors: list[Any]) -> Any:
    def on_error(error: Any, batch: Any) -> None:
        errors.append(error)

    factory: Callable[..., Any] = SegmentClient if kind == "segment" else RudderClient
    return factory(write_key=key, host=host, on_error=on_error, max_retries=1)


@pytest.mark.parametrize("kind", ["segment", "rudderstack"])
async def test_python_sdk_against_trackd(
    kind: str, http: TestClient[Any, Any], api_key: str, store: Store
) -> None:
    host = str(http.make_url("")).rstrip("/")
    errors: list[Any] = []
    client = _client(kind, host, api_key, errors)
    await asyncio.to_thread(_drive, client, errors, kind)
    assert errors == []

    docs = await stored_events(store)
    assert len(docs) == 3 + BATCH
    by_id = {doc["event_id"]: doc for doc in docs}
    user = f"user-{kind}"
    pricing = by_id[f"{kind}-pricing"]
    # Linked by identify: the anonymous history is the user's.
    assert (pricing["name"], pricing["user_id"], pricing["anonymous_id"]) == (
        "Viewed Pricing", user, f"anon-{kind}")
    assert pricing["properties"] == {"plan": "pro"}
    assert '"library"' in pricing["client_context"]
    page = by_id[f"{kind}-page"]
    assert (page["name"], page["user_id"]) == ("Loaded a Page", user)
    assert page["properties"] == {"path": "/install", "name": "Install", "category": "Docs"}
    signup = by_id[f"{kind}-signup"]
    assert (signup["name"], signup["user_id"], signup["properties"]) == (
        "Signed Up", user, {"seats": 3})
    bulk = sorted((doc for doc in docs if doc["name"] == "Bulk"),
                  key=lambda doc: doc["properties"]["i"])
    assert [doc["properties"] for doc in bulk] == [{"i": i, "round": 0} for i in range(BATCH)]
    assert {doc["event_id"] for doc in bulk} == {f"{kind}-bulk-{i}" for i in range(BATCH)}
    # Nothing the library added is a property; the key is stored nowhere.
    assert all(set(doc["properties"]) <= {"plan", "path", "name", "category", "seats", "i",
                                          "round"} for doc in docs)
    assert all(api_key not in str(doc) for doc in docs)

    (profile,) = await stored_users(store)
    assert profile["external_id"] == user
    assert profile["traits"] == {"email": f"{kind}@example.com", "plan": "pro"}
    assert sorted(profile["anonymous_ids"]) == [f"anon-{kind}", f"old-{kind}"]


@pytest.mark.parametrize("kind", ["segment", "rudderstack"])
async def test_python_sdk_wrong_key_is_final(
    kind: str, http: TestClient[Any, Any], store: Store
) -> None:
    host = str(http.make_url("")).rstrip("/")
    errors: list[Any] = []
    client = _client(kind, host, "not-a-key", errors)

    def drive() -> None:
        client.track(user_id="u", event="Nope", message_id="wrong-key")
        client.flush()
        client.shutdown()

    await asyncio.to_thread(drive)
    assert [(e.status, e.code, e.message) for e in errors] == [
        (401, "unauthorized", "invalid or revoked API key")]
    assert await stored_events(store) == []


@pytest.mark.skipif(NODE is None, reason="node is not installed")
async def test_node_sdks_against_trackd(
    http: TestClient[Any, Any], api_key: str, store: Store
) -> None:
    for package in ("@segment/analytics-node", "@rudderstack/rudder-sdk-node"):
        if not (ROOT / "node_modules" / package / "package.json").exists():
            pytest.fail(f"{package} is missing from node_modules: run `npm ci`")
    assert NODE is not None
    host = str(http.make_url("")).rstrip("/")
    results = await run_for_json([NODE, str(SCRIPT), host, api_key, str(BATCH)],
                                 bound_seconds=TIMEOUT_SECONDS)
    assert results == {
        "segment": {"errors": [], "wrongKey": 401},
        "rudderstack": {"errors": [], "wrongKey": 401},
    }
    docs = await stored_events(store)
    assert len(docs) == 2 * (3 + BATCH)
    by_id = {doc["event_id"]: doc for doc in docs}
    for kind in ("segment", "rudderstack"):
        user = f"user-node-{kind}"
        pricing = by_id[f"node-{kind}-pricing"]
        assert (pricing["name"], pricing["user_id"], pricing["anonymous_id"],
                pricing["properties"]) == ("Viewed Pricing", user, f"anon-node-{kind}",
                                           {"plan": "pro"})
        page = by_id[f"node-{kind}-page"]
        assert (page["name"], page["user_id"], page["properties"]) == (
            "Loaded a Page", user, {"path": "/install", "name": "Install",
                                    "category": "Docs"})
        assert by_id[f"node-{kind}-signup"]["properties"] == {"seats": 3}
        bulk = [doc for doc in docs if doc["name"] == "Bulk" and doc["user_id"] == user]
        assert sorted(doc["properties"]["i"] for doc in bulk) == list(range(BATCH))
        assert all(doc["properties"]["round"] == 0 for doc in bulk)
    # RudderStack's Node SDK sends no timestamp: the time is originalTimestamp corrected
    # by sentAt, so it is close to when it was received.
    rudder = by_id["node-rudderstack-signup"]
    assert abs((rudder["timestamp"] - rudder["received_at"]).total_seconds()) < 3600
    profiles = {p["external_id"]: p for p in await stored_users(store)}
    for kind in ("segment", "rudderstack"):
        profile = profiles[f"user-node-{kind}"]
        assert profile["traits"] == {"email": f"node-{kind}@example.com", "plan": "pro"}
        assert sorted(profile["anonymous_ids"]) == [f"anon-node-{kind}", f"old-node-{kind}"]
