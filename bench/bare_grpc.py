"""The bare grpc.aio baseline: trackd's own service, with handlers that do nothing.

``python -m bench.bare_grpc --port P`` serves ``trackd.v1.TrackingService`` on uvloop with
trackd's server options, but ``TrackEvent`` and ``BatchTrack`` just return an empty
response: no auth, no validation, no database. So the request is received and decoded
exactly as trackd's is, and its CPU per call is the floor of a grpc.aio unary RPC.
``--delay-ms D`` answers each call D ms later, as :mod:`bench.bare_http`'s option does
(why: its docstring).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc

from trackd.v1 import tracking_pb2
from trackd.wire.limits import MAX_MESSAGE_BYTES

SERVICE = tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name


def noop_tracking(delay: float = 0.0) -> Any:
    """``TrackEvent`` and ``BatchTrack`` of trackd.v1.TrackingService, doing nothing
    (after ``delay`` seconds)."""

    async def track_event(request: tracking_pb2.TrackEventRequest,
                          context: Any) -> tracking_pb2.TrackEventResponse:
        if delay:
            await asyncio.sleep(delay)
        return tracking_pb2.TrackEventResponse()

    async def batch_track(request: tracking_pb2.BatchTrackRequest,
                          context: Any) -> tracking_pb2.BatchTrackResponse:
        if delay:
            await asyncio.sleep(delay)
        return tracking_pb2.BatchTrackResponse()

    return grpc.method_handlers_generic_handler(SERVICE, {
        "TrackEvent": grpc.unary_unary_rpc_method_handler(
            track_event, request_deserializer=tracking_pb2.TrackEventRequest.FromString,
            response_serializer=tracking_pb2.TrackEventResponse.SerializeToString),
        "BatchTrack": grpc.unary_unary_rpc_method_handler(
            batch_track, request_deserializer=tracking_pb2.BatchTrackRequest.FromString,
            response_serializer=tracking_pb2.BatchTrackResponse.SerializeToString),
    })


async def serve(host: str, port: int, delay: float) -> None:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ])
    server.add_generic_rpc_handlers((noop_tracking(delay),))
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="event loop (trackd serve runs on uvloop)")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="answer each call this much later (default 0)")
    args = parser.parse_args()
    import uvloop

    factory = uvloop.new_event_loop if args.loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.host, args.port, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
