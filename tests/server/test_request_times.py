"""A time a request carries outside its type's range (a Timestamp past year 9999, a
Duration past ten thousand years) is the client's INVALID_ARGUMENT naming the field, on
every RPC that reads one: never INTERNAL or UNKNOWN out of the protobuf runtime."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from tests.helpers import KeyFactory
from tests.server.helpers import auth
from trackd.server.auth import ALL_SCOPES
from trackd.v1 import (
    decisions_pb2,
    decisions_pb2_grpc,
    plans_pb2,
    plans_pb2_grpc,
    tracking_pb2,
    tracking_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)

PAST_9999 = timestamp_pb2.Timestamp(seconds=10**12)
IN_RANGE = timestamp_pb2.Timestamp(seconds=1_700_000_000)


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    return [(v.field, v.description) for v in bad.field_violations]
    return []


async def first_answer(call: Any) -> None:
    """Unary: the call itself; a stream: its first message (or its refusal)."""
    if hasattr(call, "read"):
        await call.read()
    else:
        await call


CASES = {
    "WatchDecisions since": lambda ch, md: decisions_pb2_grpc.DecisionServiceStub(ch)
    .WatchDecisions(decisions_pb2.WatchDecisionsRequest(since=PAST_9999), metadata=md),
    "Subscribe since": lambda ch, md: tracking_pb2_grpc.TrackingServiceStub(ch)
    .Subscribe(tracking_pb2.SubscribeRequest(since=PAST_9999), metadata=md),
    "Replay since": lambda ch, md: webhooks_pb2_grpc.WebhookServiceStub(ch)
    .Replay(webhooks_pb2.ReplayRequest(id="wh_none", since=PAST_9999), metadata=md),
    "Replay until": lambda ch, md: webhooks_pb2_grpc.WebhookServiceStub(ch)
    .Replay(webhooks_pb2.ReplayRequest(id="wh_none", since=IN_RANGE, until=PAST_9999),
            metadata=md),
    "GetViolationReport since": lambda ch, md: plans_pb2_grpc.TrackingPlanServiceStub(ch)
    .GetViolationReport(plans_pb2.GetViolationReportRequest(
        since=duration_pb2.Duration(seconds=2**62)), metadata=md),
}
FIELDS = {"WatchDecisions since": "since", "Subscribe since": "since",
          "Replay since": "since", "Replay until": "until",
          "GetViolationReport since": "since"}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_an_out_of_range_time_is_invalid_argument(
        channel: grpc.aio.Channel, make_key: KeyFactory, case: str) -> None:
    key = await make_key("acme", ALL_SCOPES)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await first_answer(CASES[case](channel, auth(key)))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    assert refused.value.details() == f"{FIELDS[case]}: is out of range"
    assert field_violations(refused.value) == [(FIELDS[case], "is out of range")]
