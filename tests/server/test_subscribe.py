"""TrackingService.Subscribe on real servers: commit order, a cursor that resumes on
another instance with no gap and no repeat, from a time, live, the name filter, and the
errors a client can get."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.helpers import KeyFactory
from trackd.server.app import ServerConfig, create_server
from trackd.storage import Store
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

Stub = tracking_pb2_grpc.TrackingServiceStub


def auth(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


async def track(stub: Stub, key: str, names: list[str], user: str = "u1") -> list[str]:
    """Store events one call each, in order; a call a loaded machine answers UNAVAILABLE
    is retried with the same event id (stored once), as a client would."""
    ids = []
    for name in names:
        event_id = str(uuid.uuid4())
        for attempt in range(20):
            try:
                await stub.TrackEvent(tracking_pb2.TrackEventRequest(event=tracking_pb2.Event(
                    event_id=event_id, name=name, external_user_id=user)), metadata=auth(key))
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        ids.append(event_id)
    return ids


async def take(call: grpc.aio.UnaryStreamCall, count: int,
               seconds: float = 60.0) -> list[tracking_pb2.SubscribeResponse]:
    got: list[tracking_pb2.SubscribeResponse] = []

    async def read() -> None:
        while len(got) < count:
            got.append(await call.read())
    await asyncio.wait_for(read(), seconds)
    return got


def since(moment: datetime) -> tracking_pb2.SubscribeRequest:
    request = tracking_pb2.SubscribeRequest()
    request.since.FromDatetime(moment)
    return request


@pytest.fixture
async def other(store: Store, server_config: ServerConfig) -> AsyncIterator[Stub]:
    """A second instance on the same database."""
    srv = await create_server(store, server_config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
        yield tracking_pb2_grpc.TrackingServiceStub(channel)
    await srv.stop(grace=1)


@pytest.fixture
async def reader(make_key: KeyFactory) -> str:
    return await make_key("acme", ("track:events", "events:read"))


async def test_a_cursor_resumes_on_another_instance_with_no_gap_and_no_repeat(
        tracking: Stub, other: Stub, reader: str) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    ids = await track(tracking, reader, [f"e{i}" for i in range(6)])
    call = tracking.Subscribe(since(start), metadata=auth(reader))
    first = await take(call, 3)
    call.cancel()
    assert [r.event.event_id for r in first] == ids[:3]
    assert [r.event.name for r in first] == ["e0", "e1", "e2"]
    assert first[0].source == "grpc"
    assert first[0].event.external_user_id == "u1"

    resumed = other.Subscribe(tracking_pb2.SubscribeRequest(cursor=first[-1].cursor),
                              metadata=auth(reader))
    caught_up = await take(resumed, 3)
    live_ids = await track(other, reader, ["e6", "e7"], user="u2")
    live = await take(resumed, 2)
    resumed.cancel()
    assert [r.event.event_id for r in caught_up + live] == ids[3:] + live_ids
    assert len({r.cursor for r in first + caught_up + live}) == 8


async def test_from_now_only_new_events_and_the_name_filter(
        tracking: Stub, reader: str) -> None:
    await track(tracking, reader, ["old"])
    call = tracking.Subscribe(tracking_pb2.SubscribeRequest(event_names=["b"]),
                              metadata=auth(reader))
    # The stream is open once the server has read the request; a few writes until the
    # first one after it arrives (they are all "b": none may be missed after the first).
    ids: list[str] = []
    reading = asyncio.ensure_future(take(call, 1))
    while not reading.done():
        ids += await track(tracking, reader, ["a", "b"])
        await asyncio.sleep(0.2)
    (first,) = await reading
    assert first.event.name == "b"
    assert first.event.event_id in ids[1::2]
    later = await track(tracking, reader, ["a", "b", "c", "b"])
    written_b = ids[1::2]
    expected = [*written_b[written_b.index(first.event.event_id) + 1:], later[1], later[3]]
    rest = await take(call, len(expected))
    call.cancel()
    assert [r.event.event_id for r in rest] == expected
    assert {r.event.name for r in rest} == {"b"}


async def _error(call: grpc.aio.UnaryStreamCall) -> tuple[grpc.StatusCode, list[str], str]:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call.read()
    status = rpc_status.from_call(failed.value)
    fields, reason = [], ""
    for detail in status.details if status else []:
        bad, info = error_details_pb2.BadRequest(), error_details_pb2.ErrorInfo()
        if detail.Unpack(bad):
            fields = [v.field for v in bad.field_violations]
        elif detail.Unpack(info):
            reason = info.reason
    return failed.value.code(), fields, reason


async def test_errors(tracking: Stub, reader: str, make_key: KeyFactory) -> None:
    writer = await make_key("acme", ("track:events",))
    assert await _error(tracking.Subscribe(tracking_pb2.SubscribeRequest(),
                                           metadata=auth(writer))) == \
        (grpc.StatusCode.PERMISSION_DENIED, [], "SCOPE_MISSING")
    assert await _error(tracking.Subscribe(tracking_pb2.SubscribeRequest(cursor="nope"),
                                           metadata=auth(reader))) == \
        (grpc.StatusCode.INVALID_ARGUMENT, ["cursor"], "INVALID_ARGUMENT")
    # A real cursor of another project.
    foreign = await make_key("beta", ("track:events", "events:read"))
    start = datetime.now(UTC) - timedelta(seconds=1)
    await track(tracking, foreign, ["x"])
    call = tracking.Subscribe(since(start), metadata=auth(foreign))
    (theirs,) = await take(call, 1)
    call.cancel()
    assert await _error(tracking.Subscribe(tracking_pb2.SubscribeRequest(cursor=theirs.cursor),
                                           metadata=auth(reader))) == \
        (grpc.StatusCode.INVALID_ARGUMENT, ["cursor"], "INVALID_ARGUMENT")
