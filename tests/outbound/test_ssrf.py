"""Webhook URLs cannot reach private networks: refused when the endpoint is created
(INVALID_ARGUMENT naming ``url``) and again at every connection, unless private addresses
are allowed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.outbound.helpers import delivering, receiving
from tests.outbound.test_delivery import auth, track
from trackd.outbound.messages import new_secret
from trackd.storage import Store
from trackd.v1 import tracking_pb2_grpc, webhooks_pb2, webhooks_pb2_grpc

REFUSED = [
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("http://localhost:8080/hook", "loopback"),  # a name resolving to loopback
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://172.16.5.4/hook", "private"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://100.64.0.1/hook", "shared"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::1]/hook", "loopback"),
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[fd00::1]/hook", "private"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://[2002:7f00:1::]/hook", "127.0.0.1 is a loopback"),  # 6to4 of 127.0.0.1
    ("http://[2002:a01:203::1]/hook", "10.1.2.3 is a private"),  # 6to4 of 10.1.2.3
    ("http://[64:ff9b::a9fe:a9fe]/hook", "169.254.169.254 is a link-local"),  # NAT64
    ("http://[fec0::1]/hook", "site-local"),
    ("ftp://example.com/hook", "http or https"),
    ("file:///etc/passwd", "http or https"),
    ("https://user:secret@example.com/hook", "credentials"),
    ("not a url", "http or https"),
]


@pytest.fixture
def webhooks(channel: grpc.aio.Channel) -> webhooks_pb2_grpc.WebhookServiceStub:
    return webhooks_pb2_grpc.WebhookServiceStub(channel)


@pytest.mark.parametrize(("url", "why"), REFUSED)
async def test_create_refuses(url: str, why: str, store: Store,
                              webhooks: webhooks_pb2_grpc.WebhookServiceStub, key: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await webhooks.CreateEndpoint(webhooks_pb2.CreateEndpointRequest(url=url),
                                      metadata=auth(key))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(refused.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["url"]
    assert why in bad.field_violations[0].description
    assert "secret" not in (refused.value.details() or "")
    assert await store.webhooks.listing() == []


async def test_every_connection_is_checked_again(
        store: Store, tracking: tracking_pb2_grpc.TrackingServiceStub, key: str) -> None:
    """Endpoints whose URL passed at create but reach loopback now (DNS changed): a name
    and a literal. The receiver listens there, and hears nothing."""
    async with receiving() as receiver, delivering(store, allow_private=False):
        for endpoint_id, host in (("ep_name", "localhost"), ("ep_literal", "127.0.0.1")):
            await store.webhooks.insert(endpoint_id, "acme",
                                        f"http://{host}:{receiver.port}/hook", [], 1,
                                        new_secret(), datetime.now(UTC), None)
        await asyncio.sleep(3)  # both lanes run (the lease poll) before the event is stored
        await track(tracking, key, [("jon", "j1")])

        async def refused() -> list[str]:
            errors = []
            for endpoint_id in ("ep_name", "ep_literal"):
                errors += [a["error"] for a in await store.deliveries.attempts(endpoint_id, 5)]
            return errors
        deadline = asyncio.get_running_loop().time() + 60
        while len(await refused()) < 2:
            assert asyncio.get_running_loop().time() < deadline, await refused()
            await asyncio.sleep(0.1)
    errors = await refused()
    assert all("refused address" in e and "loopback" in e for e in errors), errors
    assert receiver.seen == []
