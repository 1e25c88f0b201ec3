"""A rate-limited request reaches the console's decision stream as ``rate_limited`` with
the status the door answered (429) and the gRPC code, on a real gateway and a server
whose VibeFollow limit is one request an hour per key."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.gateway.test_console import bearer, first
from tests.helpers import KeyFactory
from trackd.server.auth import SCOPE_EVENTS_READ
from trackd.server.rate_limit_policy import RateLimit

Client = TestClient[Any, Any]


@pytest.fixture
def rate_limits() -> dict[str, RateLimit]:
    return {"vibefollow": RateLimit(1, 3600.0)}


async def test_a_rate_limited_request_is_a_decision(limited_http: Client,
                                                    make_key: KeyFactory) -> None:
    reader = await make_key("acme", (SCOPE_EVENTS_READ,))
    writer = await make_key("acme", ("track:events",))
    decisions = await limited_http.get("/console/api/decisions", headers=bearer(reader))
    assert decisions.status == 200
    body = {"external_user_id": "u_1", "name": "limited"}
    allowed = await limited_http.post("/api/v1/events", headers=bearer(writer), json=body)
    assert allowed.status == 202
    limited = await limited_http.post("/api/v1/events", headers=bearer(writer), json=body)
    assert limited.status == 429
    decision = await first(decisions, "decision",
                           lambda data: data["request_id"] == limited.headers["X-Request-Id"])
    assert decision == {**decision, "kind": "rate_limited", "source": "vibefollow",
                        "http_status": 429, "grpc_code": "RESOURCE_EXHAUSTED",
                        "reason": "RATE_LIMITED", "field": ""}
    decisions.close()
