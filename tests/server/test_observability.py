"""The gRPC server's access log line and call metrics (trackd/server/observability.py), against
the real server: the fields of each call's line, the request id and dialect taken from call
metadata only when sane, exact metric deltas, and a failed flush's metrics.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re

import grpc
import pytest

from tests.helpers import KeyFactory
from tests.scrape import delta, local, value
from tests.server.helpers import auth, batch, event, track
from trackd.cli.logs import RequestIdFilter
from trackd.server import observability
from trackd.server.app import TrackdServer
from trackd.v1 import audiences_pb2, audiences_pb2_grpc, tracking_pb2_grpc

HEX_ID = re.compile(r"[0-9a-f]{32}")
TRACKING = "trackd.v1.TrackingService"


def access_fields(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [record.fields for record in caplog.records  # type: ignore[attr-defined]
            if record.name == "trackd.access"]


async def test_access_line_has_every_field_and_the_callers_request_id(
    tracking: tracking_pb2_grpc.TrackingServiceStub, api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trackd.access")
    request = batch([event(user="u-1"), event(user="u-2")])
    await tracking.BatchTrack(request, metadata=(
        *auth(api_key), ("x-request-id", "rid-grpc-1"), ("trackd-dialect", "databuddy")))
    (line,) = access_fields(caplog)
    latency = line.pop("latency_ms")
    assert isinstance(latency, float)
    assert latency >= 0
    assert line == {
        "kind": "grpc", "request_id": "rid-grpc-1", "service": TRACKING,
        "method": "BatchTrack", "code": "OK", "project": "acme", "source": "databuddy",
        "events": 2, "bytes_in": request.ByteSize(),
    }
    (record,) = [r for r in caplog.records if r.name == "trackd.access"]
    assert record.getMessage() == f"{TRACKING}/BatchTrack OK"


async def test_insane_request_id_and_unknown_dialect_are_not_taken(
    tracking: tracking_pb2_grpc.TrackingServiceStub, api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trackd.access")
    await tracking.TrackEvent(track(event()), metadata=(
        *auth(api_key), ("x-request-id", "a b"), ("trackd-dialect", "made-up")))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tracking.TrackEvent(track(event()), metadata=auth("trk_wrong"))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    first, second = access_fields(caplog)
    assert HEX_ID.fullmatch(str(first["request_id"]))
    assert first["source"] == "grpc"
    assert (second["code"], second["project"], second["events"]) == ("UNAUTHENTICATED", None, 1)
    assert second["request_id"] != first["request_id"]


async def test_a_message_that_cannot_be_decoded_is_counted_and_logged(
    server: TrackdServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The interceptor is outside ErrorInterceptor, so it sees its INVALID_ARGUMENT too."""
    caplog.set_level(logging.INFO, logger="trackd.access")
    garbage = b"\x0a\xff\xff\xff\xff\x0f"
    before = local()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        raw = channel.unary_unary(f"/{TRACKING}/TrackEvent")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await raw(garbage)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = local()
    assert delta(before, after, "trackd_grpc_requests_total", service=TRACKING,
                 method="TrackEvent", code="INVALID_ARGUMENT") == 1
    (line,) = access_fields(caplog)
    assert (line["code"], line["bytes_in"], line["events"]) == (
        "INVALID_ARGUMENT", len(garbage), 0)


async def test_failed_flush_is_counted(
    events_down: tuple[TrackdServer, tracking_pb2_grpc.TrackingServiceStub], api_key: str,
) -> None:
    _, stub = events_down
    before = local()
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.BatchTrack(batch([event(), event(), event()]), metadata=auth(api_key))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    after = local()
    assert delta(before, after, "trackd_write_flushes_failed_total", reason="unavailable") == 1
    assert delta(before, after, "trackd_write_flush_events_count") == 1
    assert delta(before, after, "trackd_write_flush_events_sum") == 3
    assert delta(before, after, "trackd_write_flush_duration_seconds_count") == 1
    assert delta(before, after, "trackd_events_total", outcome="failed", source="grpc") == 3
    assert delta(before, after, "trackd_events_total", outcome="stored", source="grpc") == 0
    assert delta(before, after, "trackd_grpc_requests_total", service=TRACKING,
                 method="BatchTrack", code="UNAVAILABLE") == 1
    # trackd_database_up is not asserted here: this server's health monitor pings the
    # test database (only its events are unreachable) and rightly sets it back to 1; the
    # gauge is asserted against a real outage in tests/durability/test_supervision.py.
    assert value(after, "trackd_write_queue_events") == value(before, "trackd_write_queue_events")


async def test_log_records_made_for_a_call_carry_its_request_id_and_a_flush_none(
    events_down: tuple[TrackdServer, tracking_pb2_grpc.TrackingServiceStub],
    channel: grpc.aio.Channel, make_key: KeyFactory, api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())  # what trackd/cli/logs.py puts on its handler
    # The first evaluation of a project starts its index load, for that call.
    reader = await make_key(scopes=("users:read",))
    audiences = audiences_pb2_grpc.AudienceServiceStub(channel)
    await audiences.EvaluateAudience(
        audiences_pb2.EvaluateAudienceRequest(audience=audiences_pb2.Audience()),
        metadata=(*auth(reader), ("x-request-id", "rid-evaluate")))
    for _ in range(600):  # a bound for a loaded machine, never a timing assertion
        loaded = [r for r in caplog.records if r.getMessage().startswith(
            "audience index of acme loaded")]
        if loaded:
            break
        await asyncio.sleep(0.05)
    assert [r.fields for r in loaded] == [{"request_id": "rid-evaluate"}]  # type: ignore[attr-defined]
    # A flush carries many requests' events: its lines name none of them.
    _, down = events_down
    with pytest.raises(grpc.aio.AioRpcError):
        await down.TrackEvent(track(event()), metadata=(
            *auth(api_key), ("x-request-id", "rid-flush")))
    (failed,) = [r for r in caplog.records if r.getMessage().startswith("flush of 1 events")]
    assert not hasattr(failed, "fields")


def test_a_carried_call_ending_after_its_carriers_line_logs_a_line_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cancelled TrackEvents call's line is written while some carried calls still
    clean up: those log their own line, so no call is missing from the log."""
    caplog.set_level(logging.INFO, logger="trackd.access")
    carrier = observability.CallInfo(service=TRACKING, method="TrackEvents",
                                     request_id="carrier-2", source="grpc", bytes_in=0)

    def handle() -> None:
        observability._CALL.set(carrier)  # as the interceptor does for the TrackEvents call
        with observability.observe_carried(
                TRACKING, "TrackEvent", [("x-request-id", "early")], 10) as early:
            early.code = grpc.StatusCode.OK
        observability._log(carrier, grpc.StatusCode.CANCELLED, 0.002)
        with observability.observe_carried(
                TRACKING, "TrackEvent", [("x-request-id", "late")], 10) as late:
            late.code = grpc.StatusCode.CANCELLED

    contextvars.copy_context().run(handle)
    lines = access_fields(caplog)
    assert [(line["request_id"], line["method"], line["code"]) for line in lines] == [
        ("carrier-2", "TrackEvents", "CANCELLED"), ("late", "TrackEvent", "CANCELLED")]
    assert [call["request_id"] for call in lines[0]["calls"]] == ["early"]  # type: ignore[attr-defined]
