"""The console's streams with a tracking plan, through the real gateway and server: an
event stored in observe mode carries its violations and plan version; a blocking plan's
refusal is a ``quarantined`` decision whose violations name fields as the door's answer
did (VibeFollow's ``properties.plan``), never the body."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.gateway.test_console import DEADLINE_SECONDS, Client, bearer, first
from tests.helpers import KeyFactory
from tests.server.plan_helpers import set_plan
from trackd.server.auth import SCOPE_EVENTS_READ
from trackd.storage import Store


async def test_streams_carry_plan_violations_and_quarantined_decisions(
        http: Client, store: Store, make_key: KeyFactory) -> None:
    reader = await make_key("acme", (SCOPE_EVENTS_READ,))
    writer = await make_key("acme", ("track:events",))
    events = await http.get("/console/api/events", headers=bearer(reader))
    decisions = await http.get("/console/api/decisions", headers=bearer(reader))
    assert (events.status, decisions.status) == (200, 200)
    assert await events.content.readuntil(b"\n\n") == b": open\n\n"

    async def send(properties: dict[str, Any]) -> tuple[int, str, Any]:
        sent = await http.post("/api/v1/events", headers=bearer(writer), json={
            "external_user_id": "u_1", "name": "user_signed_up", "properties": properties})
        return sent.status, sent.headers["X-Request-Id"], await sent.json()

    # The plan reaches the server's cache by a change stream: an event is sent again
    # until one was judged by it (the stream then says so).
    version = await set_plan(store)
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            status, request_id, _ = await send({"plan": 2})
            assert status == 202
            event = await first(events, "event", lambda d, rid=request_id:
                                d["request_id"] == rid)
            if event["plan_version"] is not None:
                break
            assert event["violations"] == []
            await asyncio.sleep(0.1)
    assert event["plan_version"] == version
    assert event["violations"] == [{"kind": "wrong_type", "field": "properties.plan",
                                    "message": "must be of type string"}]

    await set_plan(store, enforcement="block")
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            status, request_id, body = await send({"source": "secret-campaign"})
            if status != 202:
                break
            await asyncio.sleep(0.1)
    assert status == 422
    assert body["errors"][0]["field"] == "properties.plan"
    decision = await first(decisions, "decision", lambda d: d["request_id"] == request_id)
    assert decision == {**decision, "kind": "quarantined", "source": "vibefollow",
                        "http_status": 422, "grpc_code": "INVALID_ARGUMENT",
                        "reason": "TRACKING_PLAN_VIOLATION", "field": "properties.plan",
                        "description": "is required by the tracking plan",
                        "violations": ["properties.plan: is required by the tracking plan"],
                        "plan_violations": [{"kind": "missing_required",
                                             "field": "properties.plan",
                                             "message": "is required by the tracking plan"}]}
    assert b"secret-campaign" not in repr(decision).encode()
    events.close()
    decisions.close()
