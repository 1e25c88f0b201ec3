"""One process like ``trackd serve`` (the real gateway, the real TrackingService), with the
gateway-to-server hop for REST single events swapped for a prototype design.

``python -m bench.hop_serve --design D --http-port P --mongodb-uri U --database N``:

``unary-tcp``  the design before issue 14 ("today"): one unary ``TrackEvent`` per REST
               request over TCP loopback;
``unary-unix`` the same over a Unix domain socket (``unix:`` target and port);
``stream``     one long-lived bidirectional stream from the gateway to the server; each REST
               request is one message on it and gets its own result message;
``coalesce``   concurrent REST requests gathered in the gateway (everything that arrived by
               the next turn of the event loop, or ``--linger-ms``, at most ``--max-items``)
               and sent as one unary call whose response has one result per request.

The gateway is :func:`trackd.gateway.app.create_app`; only ``app[TRACKING]`` becomes the plain
stub (unary designs) or an object whose ``TrackEvent`` takes the same arguments and
returns or raises what the stub's would (a ``TrackEventResponse``, or an ``AioRpcError``
with the server's status details).
On the server every carried request runs the real ``TrackingService.TrackEvent`` with its
own metadata (so its own key, scopes, idempotency key and error), exactly as a unary call.
The prototype hops use a proto-free framing (:func:`pack_item` ...) of the existing
messages; the product's coalescing (``trackd serve``) uses the TrackEvents RPC instead.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import logging
import os
import shutil
import signal
import struct
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from grpc_status import rpc_status

from trackd.cli.settings import load
from trackd.gateway.app import create_app
from trackd.gateway.settings import TRACKING
from trackd.server.auth import Authenticator
from trackd.server.errors import INTERNAL, ErrorInterceptor, ServiceError, to_status
from trackd.server.idempotency import IdempotencyGuard
from trackd.server.pipeline import WritePipeline
from trackd.server.plans.book import PlanBook
from trackd.server.plans.verdict import PlanJudge
from trackd.server.services.tracking import TrackingService
from trackd.server.websites import WebsiteGuard
from trackd.storage import connect
from trackd.v1 import tracking_pb2, tracking_pb2_grpc
from trackd.wire.limits import MAX_MESSAGE_BYTES

log = logging.getLogger("bench.hop_serve")

DESIGNS = ("unary-tcp", "unary-unix", "stream", "coalesce")
STREAM_METHOD = "/trackd.bench.Hop/TrackStream"
MANY_METHOD = "/trackd.bench.Hop/TrackMany"
OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
           ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]

Metadata = Sequence[tuple[str, str | bytes]]

# -- framing: one request = seq, metadata pairs, TrackEventRequest bytes; one result =
# -- seq, status code (0 = OK), then the response bytes, or trailing metadata and details.


def _pack_pairs(pairs: Metadata) -> bytes:
    out = [struct.pack(">H", len(pairs))]
    for key, value in pairs:
        k, v = key.encode(), value if isinstance(value, bytes) else value.encode()
        out.append(struct.pack(">HI", len(k), len(v)) + k + v)
    return b"".join(out)


def _unpack_pairs(raw: bytes, at: int) -> tuple[list[tuple[str, str | bytes]], int]:
    (count,) = struct.unpack_from(">H", raw, at)
    at += 2
    pairs: list[tuple[str, str | bytes]] = []
    for _ in range(count):
        klen, vlen = struct.unpack_from(">HI", raw, at)
        at += 6
        key = raw[at:at + klen].decode()
        value = raw[at + klen:at + klen + vlen]
        at += klen + vlen
        pairs.append((key, value if key.endswith("-bin") else value.decode()))
    return pairs, at


def pack_item(seq: int, metadata: Metadata, message: bytes) -> bytes:
    return struct.pack(">I", seq) + _pack_pairs(metadata) + message


def unpack_item(raw: bytes) -> tuple[int, list[tuple[str, str | bytes]], bytes]:
    (seq,) = struct.unpack_from(">I", raw, 0)
    pairs, at = _unpack_pairs(raw, 4)
    return seq, pairs, raw[at:]


def pack_result(seq: int, code: int, body: bytes, trailing: Metadata = ()) -> bytes:
    if code == 0:
        return struct.pack(">IH", seq, 0) + body
    return struct.pack(">IH", seq, code) + _pack_pairs(trailing) + body


def unpack_result(raw: bytes) -> tuple[int, tracking_pb2.TrackEventResponse | grpc.aio.AioRpcError]:
    seq, code = struct.unpack_from(">IH", raw, 0)
    if code == 0:
        return seq, tracking_pb2.TrackEventResponse.FromString(raw[6:])
    pairs, at = _unpack_pairs(raw, 6)
    status = next(c for c in grpc.StatusCode if c.value[0] == code)
    return seq, grpc.aio.AioRpcError(status, grpc.aio.Metadata(),
                                     grpc.aio.Metadata(*pairs), raw[at:].decode())


def join(frames: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(f)) + f for f in frames)


def split(raw: bytes) -> list[bytes]:
    frames, at = [], 0
    while at < len(raw):
        (size,) = struct.unpack_from(">I", raw, at)
        frames.append(raw[at + 4:at + 4 + size])
        at += 4 + size
    return frames


# -- server half ---------------------------------------------------------------------------


class ItemContext:
    """What TrackingService reads of a ServicerContext: the carried request's metadata."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = tuple(metadata)

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:  # the rate limiter's fallback address (the bench sends keys)
        return "bench"

    def set_trailing_metadata(self, metadata: Metadata) -> None:
        """The prototypes carry no trailing metadata back on success."""


class HopServer:
    """Runs each carried request through the real TrackEvent, with its own result."""

    def __init__(self, service: TrackingService) -> None:
        self._service = service

    async def one(self, raw: bytes) -> bytes:
        seq, metadata, message = unpack_item(raw)
        try:
            request = tracking_pb2.TrackEventRequest.FromString(message)
            context: Any = ItemContext(metadata)
            response = await self._service.TrackEvent(request, context)
            return pack_result(seq, 0, response.SerializeToString())
        except ServiceError as exc:
            status = to_status(exc)
        except Exception:
            log.exception("unexpected error in a carried TrackEvent")
            status = rpc_status.to_status(INTERNAL)
        return pack_result(seq, status.code.value[0], status.details.encode(),
                           status.trailing_metadata)

    async def many(self, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        results = await asyncio.gather(*(self.one(frame) for frame in split(raw)))
        return join(results)

    async def stream(self, _requests: AsyncIterator[bytes],
                     context: grpc.aio.ServicerContext[Any, Any]) -> None:
        done: asyncio.Queue[bytes | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(frame: bytes) -> None:
            done.put_nowait(await self.one(frame))

        async def read() -> None:
            while True:
                frame = await context.read()
                if frame is grpc.aio.EOF:
                    break
                task = asyncio.create_task(answer(frame))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks))
            done.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (result := await done.get()) is not None:
                await context.write(result)
        finally:
            reader.cancel()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler("trackd.bench.Hop", {
            "TrackMany": grpc.unary_unary_rpc_method_handler(self.many),
            "TrackStream": grpc.stream_stream_rpc_method_handler(self.stream),
        })


# -- gateway half --------------------------------------------------------------------------


class UnaryLike:
    """What the gateway's ``call()`` reads of a grpc.aio unary call, around a prototype's
    TrackEvent coroutine (its successes carry no trailing metadata)."""

    def __init__(self, coroutine: Any) -> None:
        self._coroutine = coroutine

    def __await__(self) -> Any:
        return self._coroutine.__await__()

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()


class StubLike:
    """The tracking stub with TrackEvent replaced; everything else is the real stub's."""

    def __init__(self, stub: tracking_pb2_grpc.TrackingServiceStub) -> None:
        self._stub = stub
        track_event = self.TrackEvent
        self.TrackEvent: Any = lambda *args, **kwargs: UnaryLike(track_event(*args, **kwargs))
        self._seq = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)

    def _settle(self, raw: bytes) -> None:
        seq, result = unpack_result(raw)
        future = self._waiting.pop(seq, None)
        if future is None or future.done():
            return
        if isinstance(result, grpc.aio.AioRpcError):
            future.set_exception(result)
        else:
            future.set_result(result)

    def _fail_all(self, exc: BaseException, seqs: Sequence[int] | None = None) -> None:
        for seq in list(self._waiting) if seqs is None else seqs:
            future = self._waiting.pop(seq, None)
            if future is not None and not future.done():
                future.set_exception(exc)


class StreamHop(StubLike):
    """One bidirectional stream; a single writer (grpc allows one write at a time)."""

    def __init__(self, channel: grpc.aio.Channel,
                 stub: tracking_pb2_grpc.TrackingServiceStub) -> None:
        super().__init__(stub)
        self._open = channel.stream_stream(STREAM_METHOD)
        self._outbox: asyncio.Queue[bytes] | None = None
        self._reader: asyncio.Task[None] | None = None

    def _ensure(self) -> asyncio.Queue[bytes]:
        if self._outbox is None:
            outbox: asyncio.Queue[bytes] = asyncio.Queue()

            async def frames() -> AsyncIterator[bytes]:
                while True:
                    yield await outbox.get()

            self._outbox = outbox
            self._reader = asyncio.create_task(self._read(self._open(frames())))
        return self._outbox

    async def _read(self, call: Any) -> None:
        try:
            async for raw in call:
                self._settle(raw)
        except grpc.aio.AioRpcError as exc:
            self._fail_all(exc)
        finally:
            self._outbox = None

    async def TrackEvent(self, message: tracking_pb2.TrackEventRequest, *,  # noqa: N802
                         metadata: Metadata, timeout: float  # noqa: ASYNC109
                         ) -> tracking_pb2.TrackEventResponse:
        seq = next(self._seq)
        future: asyncio.Future[tracking_pb2.TrackEventResponse] = \
            asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        self._ensure().put_nowait(pack_item(seq, metadata, message.SerializeToString()))
        return await asyncio.wait_for(future, timeout)


class CoalesceHop(StubLike):
    def __init__(self, channel: grpc.aio.Channel, stub: tracking_pb2_grpc.TrackingServiceStub,
                 linger: float, max_items: int) -> None:
        super().__init__(stub)
        self._many = channel.unary_unary(MANY_METHOD)
        self._linger = linger
        self._max_items = max_items
        self._pending: list[tuple[int, bytes]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def TrackEvent(self, message: tracking_pb2.TrackEventRequest, *,  # noqa: N802
                         metadata: Metadata, timeout: float  # noqa: ASYNC109
                         ) -> tracking_pb2.TrackEventResponse:
        loop = asyncio.get_running_loop()
        seq = next(self._seq)
        future: asyncio.Future[tracking_pb2.TrackEventResponse] = loop.create_future()
        self._waiting[seq] = future
        self._pending.append((seq, pack_item(seq, metadata, message.SerializeToString())))
        if len(self._pending) >= self._max_items:
            self._flush(timeout)
        elif len(self._pending) == 1:
            if self._linger:
                loop.call_later(self._linger, self._flush, timeout)
            else:
                loop.call_soon(self._flush, timeout)
        return await future

    def _flush(self, timeout: float) -> None:
        pending, self._pending = self._pending, []
        if pending:
            task = asyncio.create_task(self._send(pending, timeout))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, pending: list[tuple[int, bytes]],
                    timeout: float) -> None:  # noqa: ASYNC109
        seqs = [seq for seq, _ in pending]
        try:
            raw = await self._many(join([frame for _, frame in pending]), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            self._fail_all(exc, seqs)
            return
        for frame in split(raw):
            self._settle(frame)
        self._fail_all(RuntimeError("no result for a carried request"), seqs)


# -- the process ---------------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> None:
    settings = load({"mongodb_uri": args.mongodb_uri, "database": args.database})
    config = settings.server_config(0)
    store = await connect(args.mongodb_uri, settings.database)
    pipeline = WritePipeline(store.events, config.pipeline)
    pipeline.start()
    auth = Authenticator(store.keys, config.auth_cache_seconds)
    websites = WebsiteGuard(auth, store.websites, config.auth_cache_seconds)
    judge = PlanJudge(PlanBook(store.plans, config.auth_cache_seconds), store.quarantine,
                      store.plan_violations)
    service = TrackingService(auth, pipeline, IdempotencyGuard(store.idempotency),
                              store.users, websites, judge)
    server = grpc.aio.server(interceptors=[ErrorInterceptor()], options=OPTIONS)
    tracking_pb2_grpc.add_TrackingServiceServicer_to_server(service, server)
    server.add_generic_rpc_handlers([HopServer(service).handler()])
    socket_dir = Path(tempfile.mkdtemp(prefix="trackd-hop-"))
    if args.design == "unary-unix":
        target = f"unix:{socket_dir / 'grpc.sock'}"
        server.add_insecure_port(target)
    else:
        target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()

    gateway = dataclasses.replace(settings.gateway_settings(0), grpc_target=target)
    app = create_app(gateway)

    async def hop(app: web.Application) -> AsyncIterator[None]:
        channel = grpc.aio.insecure_channel(target, options=OPTIONS)
        stub = tracking_pb2_grpc.TrackingServiceStub(channel)
        # The unary designs call TrackEvent itself, as the gateway did before issue 14
        # (it ships coalescing now: trackd/gateway/hop.py).
        swapped: Any = stub
        if args.design == "stream":
            swapped = StreamHop(channel, stub)
        elif args.design == "coalesce":
            swapped = CoalesceHop(channel, stub, args.linger_ms / 1000, args.max_items)
        app[TRACKING] = swapped
        yield
        await channel.close()

    app.cleanup_ctx.append(hop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.http_port).start()
    log.info("hop design %s: REST :%d, gRPC %s", args.design, args.http_port, target)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
    await server.stop(5)
    await pipeline.close()
    await store.close()
    shutil.rmtree(socket_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--design", choices=DESIGNS, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--mongodb-uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--linger-ms", type=float, default=0.0,
                        help="coalesce: how long the first request waits for others "
                        "(0: until the event loop's next turn)")
    parser.add_argument("--max-items", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("TRACKD_LOG_LEVEL", "WARNING"))
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()
