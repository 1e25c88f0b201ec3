"""The gRPC load generator: a grpc.aio client in its own process.

``python -m bench.grpc_load --target HOST:PORT --rpc TrackEvent|BatchTrack ...`` keeps
``--concurrency`` calls in flight over one channel (as trackd's gateway does), each event
with a unique id, and prints a :class:`bench.loadgen.LoadResult`. Any non-OK status is an
error. Pointed at :mod:`bench.bare_grpc` it measures the no-op baseline. ``--properties
json`` (the default) sends each event's properties as ``properties_json``, encoded per
event with orjson as a producer holding JSON would; ``struct`` fills the Struct.
"""

from __future__ import annotations

import argparse

import grpc
import orjson
from google.protobuf import struct_pb2

from bench.loadgen import (
    LoadResult,
    Operation,
    add_window_args,
    event_fields,
    event_id,
    run,
    run_window,
)
from trackd.v1 import tracking_pb2, tracking_pb2_grpc
from trackd.wire.limits import MAX_MESSAGE_BYTES


def template_event(encoding: str = "json") -> tracking_pb2.Event:
    fields = event_fields(0)
    event = tracking_pb2.Event(name=fields["name"], external_user_id=fields["external_user_id"])
    if encoding == "struct":
        properties = struct_pb2.Struct()
        properties.update(fields["properties"])
        event.properties.CopyFrom(properties)
    return event


def fill(event: tracking_pb2.Event, run_id: str, proc_index: int, seq: int,
         encoding: str = "json") -> None:
    event.event_id = event_id(run_id, proc_index, seq)
    event.external_user_id = f"usr_{seq % 10_000}"
    if encoding == "struct":
        event.properties.fields["n"].number_value = seq
    else:
        event.properties_json = orjson.dumps(event_fields(seq)["properties"])


async def main(args: argparse.Namespace) -> LoadResult:
    channel = grpc.aio.insecure_channel(args.target, options=[
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ])
    stub = tracking_pb2_grpc.TrackingServiceStub(channel)
    metadata = (("authorization", f"Bearer {args.token}"),)
    encoding: str = args.properties
    template = template_event(encoding)
    batch_template = tracking_pb2.BatchTrackRequest(events=[template] * args.batch)
    batch: int = args.batch

    async def track_event(seq: int) -> int:
        request = tracking_pb2.TrackEventRequest()
        request.event.CopyFrom(template)
        fill(request.event, args.run_id, args.proc_index, seq, encoding)
        await stub.TrackEvent(request, metadata=metadata, timeout=30)
        return 1

    async def batch_track(seq: int) -> int:
        request = tracking_pb2.BatchTrackRequest()
        request.CopyFrom(batch_template)
        for index, event in enumerate(request.events):
            fill(event, args.run_id, args.proc_index, seq * batch + index, encoding)
        await stub.BatchTrack(request, metadata=metadata, timeout=60)
        return batch

    op: Operation = track_event if args.rpc == "TrackEvent" else batch_track
    try:
        await channel.channel_ready()
        return await run_window(op, args.concurrency, args.start, args.end)
    finally:
        await channel.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True, help="HOST:PORT of the gRPC server")
    parser.add_argument("--rpc", choices=("TrackEvent", "BatchTrack"), required=True)
    parser.add_argument("--batch", type=int, default=500, help="events per BatchTrack")
    parser.add_argument("--token", default="", help="the API key")
    parser.add_argument("--properties", choices=("json", "struct"), default="json",
                        help="how events carry their properties (default: json)")
    add_window_args(parser)
    run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
