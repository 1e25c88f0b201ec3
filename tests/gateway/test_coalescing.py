"""Concurrent single-event REST requests, which the gateway carries to the server in
shared TrackEvents calls (gateway/hop.py): each still gets exactly its own answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from storage import Store
from tests.conftest import KeyFactory, stored_events

Client = TestClient[Any, Any]
ACCEPTED = {"data": {"accepted": True}}
INVALID_KEY = {"errors": [{"code": "unauthorized", "message": "invalid or revoked API key"}]}


def body(event_id: str) -> dict[str, Any]:
    return {"external_user_id": "usr_1", "name": "feature_used", "event_id": event_id,
            "properties": {"feature": "export"}}


async def test_concurrent_requests_of_many_callers_each_get_their_own_answer(
    http: Client, store: Store, api_key: str, make_key: KeyFactory
) -> None:
    other = await make_key("globex")
    callers = [("acme", api_key), ("unknown", "trk_unknown"), ("globex", other)]

    async def post(i: int) -> tuple[str, int, Any]:
        project, key = callers[i % 3]
        resp = await http.post("/api/v1/events", json=body(f"{project}-{i}"),
                               headers={"Authorization": f"Bearer {key}"})
        return project, resp.status, await resp.json()

    answers = await asyncio.gather(*(post(i) for i in range(30)))

    for project, status, answer in answers:
        if project == "unknown":
            assert (status, answer) == (401, INVALID_KEY)
        else:
            assert (status, answer) == (202, ACCEPTED)
    assert sorted(d["event_id"] for d in await stored_events(store)) == sorted(
        f"acme-{i}" for i in range(0, 30, 3))
    assert sorted(d["event_id"] for d in await stored_events(store, "globex")) == sorted(
        f"globex-{i}" for i in range(2, 30, 3))


async def test_concurrent_retries_of_a_stored_request_replay_and_store_nothing_more(
    http: Client, store: Store, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}",
               "Idempotency-Key": "c0a1e5ce-0000-4000-8000-000000000001"}
    event = {"external_user_id": "usr_1", "name": "user_signed_up"}

    async def post() -> tuple[int, Any]:
        resp = await http.post("/api/v1/events", json=event, headers=headers)
        return resp.status, await resp.json()

    first = await post()
    retries = await asyncio.gather(*(post() for _ in range(5)))

    assert [first, *retries] == [(202, ACCEPTED)] * 6
    (stored,) = await stored_events(store)
    assert stored["name"] == "user_signed_up"
