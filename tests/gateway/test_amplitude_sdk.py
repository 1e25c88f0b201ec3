"""The official Amplitude Python SDK (``amplitude-analytics``, PyPI, the dev extra),
unchanged but for its ``server_url`` and API key, against a live gateway and gRPC
server, on both routes (``/2/httpapi``, and ``/batch`` as with ``use_batch``): track,
identify, linking a device to a user, a page view, a batch of several hundred, a resent
batch stored once, and a wrong key; then exactly what the database holds.

The SDK queues in memory and sends from worker threads: each test flushes and shuts the
client down explicitly, in a worker thread so the event loop serving the gateway runs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from amplitude import Amplitude, BaseEvent, Config, EventOptions, Identify

from tests.helpers import stored_events, stored_users
from trackd.storage import Store

BATCH = 300


def flush(client: Amplitude) -> None:
    """Send what is queued and wait for the answers (flush returns one future per
    destination, None for an empty queue)."""
    for future in client.flush():
        if future is not None:
            future.result()


def _drive(client: Amplitude, tag: str) -> None:
    device, user = f"device-{tag}", f"user-{tag}"
    client.track(BaseEvent("viewed pricing", device_id=device, insert_id=f"{tag}-pricing",
                           event_properties={"plan": "pro"}, platform="python"))
    client.track(BaseEvent("[Amplitude] Page Viewed", device_id=device,
                           insert_id=f"{tag}-page",
                           event_properties={"[Amplitude] Page Path": "/install"}))
    flush(client)
    identify = Identify()
    identify.set("email", f"{tag}@example.com")
    identify.set_once("first_seen", "pricing")
    client.identify(identify, EventOptions(user_id=user))
    # An event carrying both ids links the device's history to the user (Amplitude's
    # alias).
    client.track(BaseEvent("signed up", user_id=user, device_id=device,
                           insert_id=f"{tag}-signup", event_properties={"seats": 3},
                           time=1_767_225_600_000))
    flush(client)
    for round_ in range(2):  # the same insert ids twice: stored once
        for i in range(BATCH):
            client.track(BaseEvent("bulk", user_id=user, insert_id=f"{tag}-bulk-{i}",
                                   event_properties={"i": i, "round": round_}))
        flush(client)
    client.shutdown()


@pytest.mark.parametrize("route", ["/2/httpapi", "/batch"])
async def test_sdk_against_trackd(http: TestClient[Any, Any], api_key: str, store: Store,
                                  route: str) -> None:
    codes: list[tuple[int, str | None]] = []
    config = Config(server_url=str(http.make_url(route)), flush_queue_size=100,
                    use_batch=route == "/batch",
                    callback=lambda event, code, message: codes.append((code, message)))
    client = Amplitude(api_key, config)
    await asyncio.to_thread(_drive, client, "py")
    assert set(codes) == {(200, "Event sent successfully.")}
    assert len(codes) == 4 + 2 * BATCH  # pricing, page, identify, signup, the batches

    docs = await stored_events(store)
    assert len(docs) == 3 + BATCH
    by_id = {doc["event_id"]: doc for doc in docs}
    pricing = by_id["py-pricing"]
    assert (pricing["name"], pricing["user_id"], pricing["anonymous_id"],
            pricing["properties"]) == ("viewed pricing", "user-py", "device-py",
                                       {"plan": "pro"})
    context = orjson.loads(pricing["client_context"])
    assert context["platform"] == "python"
    assert context["library"].startswith("amplitude-python/")
    page = by_id["py-page"]
    assert (page["name"], page["user_id"]) == ("[Amplitude] Page Viewed", "user-py")
    signup = by_id["py-signup"]
    assert signup["timestamp"].timestamp() == 1_767_225_600
    assert signup["properties"] == {"seats": 3}
    bulk = [doc for doc in docs if doc["name"] == "bulk"]
    assert sorted(doc["properties"]["i"] for doc in bulk) == list(range(BATCH))
    assert all(doc["properties"]["round"] == 0 for doc in bulk)
    assert all(api_key not in str(doc) for doc in docs)
    (user,) = await stored_users(store)
    assert user["external_id"] == "user-py"
    assert user["traits"] == {"email": "py@example.com", "first_seen": "pricing"}
    assert user["anonymous_ids"] == ["device-py"]


async def test_wrong_key_is_final(http: TestClient[Any, Any], store: Store,
                                  caplog: pytest.LogCaptureFixture) -> None:
    codes: list[int] = []
    config = Config(server_url=str(http.make_url("/2/httpapi")),
                    callback=lambda event, code, message: codes.append(code))
    client = Amplitude("not-a-key", config)

    def drive() -> None:
        client.track(BaseEvent("nope", user_id="user-1"))
        flush(client)
        client.shutdown()

    with caplog.at_level(logging.ERROR):
        await asyncio.to_thread(drive)
    assert "Invalid API Key" in caplog.messages
    assert codes == []  # dropped, never retried
    assert await stored_events(store) == []
