"""The official PostHog SDKs, unchanged but for host and project API key, against a live
gateway and gRPC server: capture, identify, alias, a pageview, a batch of several
hundred, a resent batch stored once, and a wrong key; then exactly what the database
holds.

Python: ``posthog`` (PyPI, the dev extra), which queues in memory and sends from a
consumer thread: flushed and shut down explicitly, in a worker thread so the event loop
serving the gateway keeps running. Node: ``posthog-node`` (pinned in package.json), run
as a real Node process by ``posthog_sdk.mjs``.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from posthog import Posthog

from tests.helpers import stored_events, stored_users
from tests.processes import ROOT, run_for_json
from trackd.storage import Store

SCRIPT = Path(__file__).with_name("posthog_sdk.mjs")
NODE = shutil.which("node")
TIMEOUT_SECONDS = 180.0  # a bound for a stuck process, never asserted on
BATCH = 300
# PostHog's SDKs replace an event uuid that is not a UUID: stable ones, for the resend.
NAMESPACE = uuid.UUID("2d1b5c1e-9a67-4c55-8a3c-0f4f1d2a9b10")


def event_uuid(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def _drive(client: Posthog, tag: str) -> None:
    """The SDK's calls, in the order an app makes them; blocking (run in a thread)."""
    anonymous, user = f"anon-{tag}", f"user-{tag}"
    client.capture("viewed pricing", distinct_id=anonymous, properties={"plan": "pro"},
                   uuid=event_uuid(f"{tag}-pricing"))
    client.capture("$pageview", distinct_id=anonymous,
                   properties={"$current_url": "https://example.com/install"},
                   uuid=event_uuid(f"{tag}-page"))
    # What posthog-js sends on identify(): the python SDK has no identify() of its own.
    client.capture("$identify", distinct_id=user, properties={
        "$anon_distinct_id": anonymous, "$set": {"email": f"{tag}@example.com"},
        "$set_once": {"first_seen": "pricing"}})
    client.set(distinct_id=user, properties={"plan": "pro"})
    client.set_once(distinct_id=user, properties={"first_seen": "never applied"})
    client.capture("earlier", distinct_id=f"old-{tag}", uuid=event_uuid(f"{tag}-earlier"))
    client.alias(previous_id=f"old-{tag}", distinct_id=user)
    client.capture("signed up", distinct_id=user, properties={"seats": 3},
                   uuid=event_uuid(f"{tag}-signup"))
    client.flush()
    for round_ in range(2):  # the same uuids twice: stored once
        for i in range(BATCH):
            client.capture("bulk", distinct_id=user, properties={"i": i, "round": round_},
                           uuid=event_uuid(f"{tag}-bulk-{i}"))
        client.flush()
    client.shutdown()


async def test_python_sdk_against_trackd(
    http: TestClient[Any, Any], api_key: str, store: Store
) -> None:
    errors: list[Any] = []
    client = Posthog(api_key, host=str(http.make_url("")).rstrip("/"),
                     on_error=lambda error, batch: errors.append(error), max_retries=1)
    await asyncio.to_thread(_drive, client, "python")
    assert errors == []
    await check(store, "python", api_key)


async def check(store: Store, tag: str, api_key: str) -> None:
    user = f"user-{tag}"
    docs = await stored_events(store)
    assert len(docs) == 4 + BATCH
    by_id = {doc["event_id"]: doc for doc in docs}
    pricing = by_id[event_uuid(f"{tag}-pricing")]
    # $identify joined the anonymous distinct id's history to the user's.
    assert (pricing["name"], pricing["user_id"], pricing["properties"]) == (
        "viewed pricing", user, {"plan": "pro"})
    library = orjson.loads(pricing["client_context"])
    assert {"$lib", "$lib_version"} <= set(library)
    page = by_id[event_uuid(f"{tag}-page")]
    assert (page["name"], page["user_id"], page["properties"]) == ("$pageview", user, {})
    assert '"$current_url":"https://example.com/install"' in page["client_context"]
    # $create_alias: distinct_id is the earlier id, alias the user.
    assert by_id[event_uuid(f"{tag}-earlier")]["user_id"] == user
    signup = by_id[event_uuid(f"{tag}-signup")]
    assert (signup["name"], signup["user_id"], signup["properties"]) == (
        "signed up", user, {"seats": 3})
    bulk = [doc for doc in docs if doc["name"] == "bulk"]
    assert sorted(doc["properties"]["i"] for doc in bulk) == list(range(BATCH))
    assert all(doc["properties"]["round"] == 0 for doc in bulk)
    assert all(not any(key.startswith("$") for key in doc["properties"]) for doc in docs)
    assert all(api_key not in str(doc) for doc in docs)
    (profile,) = await stored_users(store)
    assert profile["external_id"] == user
    assert profile["traits"] == {"email": f"{tag}@example.com", "plan": "pro",
                                 "first_seen": "pricing"}


async def test_python_sdk_wrong_key_is_final(http: TestClient[Any, Any], store: Store) -> None:
    errors: list[Any] = []
    client = Posthog("not-a-key", host=str(http.make_url("")).rstrip("/"),
                     on_error=lambda error, batch: errors.append(error), max_retries=1)

    def drive() -> None:
        client.capture("nope", distinct_id="u")
        client.flush()
        client.shutdown()

    await asyncio.to_thread(drive)
    assert [(e.status, e.message) for e in errors] == [(401, "invalid or revoked API key")]
    assert await stored_events(store) == []


@pytest.mark.skipif(NODE is None, reason="node is not installed")
async def test_node_sdk_against_trackd(
    http: TestClient[Any, Any], api_key: str, store: Store
) -> None:
    if not (ROOT / "node_modules" / "posthog-node" / "package.json").exists():
        pytest.fail("posthog-node is missing from node_modules: run `npm ci`")
    assert NODE is not None
    ids = {name: event_uuid(f"node-{name}") for name in ("pricing", "page", "earlier",
                                                        "signup")}
    ids.update({f"bulk-{i}": event_uuid(f"node-bulk-{i}") for i in range(BATCH)})
    results = await run_for_json(
        [NODE, str(SCRIPT), str(http.make_url("")).rstrip("/"), api_key, str(BATCH),
         ",".join(f"{name}={value}" for name, value in ids.items())],
        bound_seconds=TIMEOUT_SECONDS)
    assert results == {"errors": [], "wrongKey": 401}
    await check(store, "node", api_key)
