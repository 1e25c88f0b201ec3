"""Rate limits as a server rule: per API key id (whatever the credential's spelling), per
scope (the gateway's dialect, or grpc), RESOURCE_EXHAUSTED with RetryInfo over gRPC, and
the IETF RateLimit headers on REST answers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.helpers import KeyFactory, limited_gateway, stored_events
from tests.server.helpers import RichError, event, rpc_error, track
from trackd.server.app import ServerConfig, TrackdServer, create_server
from trackd.server.rate_limit_policy import RateLimit
from trackd.storage import Store
from trackd.v1 import tracking_pb2_grpc

DOMAIN = "trackd"


@pytest.fixture
async def limited(store: Store, server_config: ServerConfig) -> AsyncIterator[TrackdServer]:
    """A server allowing direct gRPC callers 3 calls per key per minute."""
    server = await create_server(store, dataclasses.replace(
        server_config, rate_limits={"grpc": RateLimit(3, 60)}))
    yield server
    await server.stop(grace=5)


async def test_grpc_scope_counts_per_key_whatever_the_spelling(
    limited: TrackdServer, make_key: KeyFactory, store: Store
) -> None:
    key, other = await make_key(), await make_key()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{limited.port}") as channel:
        stub = tracking_pb2_grpc.TrackingServiceStub(channel)
        for n, spelling in enumerate(("Bearer", "BEARER", "bearer ")):
            call = stub.TrackEvent(track(event(user=f"u{n}")),
                                   metadata=[("authorization", f"{spelling} {key}")])
            await call
            assert dict(await call.trailing_metadata())["ratelimit-policy"] == \
                '"grpc";q=3;w=60'
        error = await rpc_error(stub.TrackEvent(
            track(event(user="u3")), metadata=[("authorization", f"bearer {key}")]))
        assert error == RichError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "rate limit exceeded: 3 requests per 60 s per key; retry in 20 s",
            error_info=("RATE_LIMITED", DOMAIN, ()), retry_delay_seconds=20,
            detail_types=("ErrorInfo", "RetryInfo"))
        # Another key has its own budget; the gateway's dialects are other scopes.
        await stub.TrackEvent(track(event(user="u4")),
                              metadata=[("authorization", f"Bearer {other}")])
        await stub.TrackEvent(track(event(user="u5")),
                              metadata=[("authorization", f"Bearer {key}"),
                                        ("trackd-dialect", "vibefollow")])
    assert sorted(d["user_id"] for d in await stored_events(store)) == \
        ["u0", "u1", "u2", "u4", "u5"]


async def test_rest_answers_carry_the_ratelimit_headers(
    store: Store, server_config: ServerConfig, make_key: KeyFactory
) -> None:
    key = await make_key()
    async with limited_gateway(store, server_config, {"vibefollow": RateLimit(2, 60)}) as http:
        body = {"external_user_id": "u1", "name": "feature_used",
                "properties": {"feature": "export"}}
        answers = [await http.post("/api/v1/events", json=body,
                                   headers={"Authorization": f"Bearer {key}"})
                   for _ in range(3)]
        assert [r.status for r in answers] == [202, 202, 429]
        assert [r.headers["RateLimit-Policy"] for r in answers] == \
            ['"vibefollow";q=2;w=60'] * 3
        # r: requests left; t: seconds until the bucket is full (refused: until one is
        # back, the Retry-After).
        fields = [r.headers["RateLimit"].split(";") for r in answers]
        assert [(name, remaining) for name, remaining, _ in fields] == [
            ('"vibefollow"', "r=1"), ('"vibefollow"', "r=0"), ('"vibefollow"', "r=0")]
        assert [int(reset.removeprefix("t=")) for _, _, reset in fields][1] <= 60
        assert fields[2][2] == f"t={answers[2].headers['Retry-After']}"
        assert 1 <= int(answers[2].headers["Retry-After"]) <= 30
        # A call that is not authenticated is not counted, and has no budget to tell.
        unlimited = await http.post("/api/v1/events", json=body,
                                    headers={"Authorization": "Bearer trk_nope"})
        assert unlimited.status == 401
        assert "RateLimit" not in unlimited.headers
