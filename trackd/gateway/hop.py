"""The gateway's hop for single events: concurrent TrackEvent calls gathered into one
TrackingService.TrackEvents RPC, each with its own metadata and its own result.

A REST request for one event costs a handful of microseconds of trackd's rules but a
gRPC call of its own costs several hundred (bench/README.md, "The gateway-to-server
hop"): so :class:`CoalescingTracking` (the gateway's tracking stub) sends the TrackEvent
calls that arrive before the event loop's next turn, at most :data:`MAX_CALLS` and
:data:`MAX_BYTES` of requests, as one TrackEvents call. Every caller still gets exactly
what its own TrackEvent call would have given: the server runs each carried call as a
TrackEvent of its own (key, scopes, idempotency, error), and a failed result becomes the
same ``AioRpcError`` (code, message, ``google.rpc`` details). Nothing waits for a timer:
under light load a call goes alone, on the loop's next turn. A request larger than
:data:`MAX_BYTES` is sent as a TrackEvent call of its own, and so is every request once
a server has answered TrackEvents with UNIMPLEMENTED (it predates the RPC: a gateway may
be upgraded before its servers). So is a request whose properties are a Struct rather
than JSON bytes (the gateway's dialects send ``properties_json``): carried two message
levels further down (``TrackEventsRequest.calls[].request``), a Struct nested near
protobuf's decoding limit would no longer decode, and would fail every call carried with
it; alone it gets the answer it always got.

What :meth:`CoalescingTracking.TrackEvent` returns behaves as a grpc.aio unary call
for what the gateway reads of one (trackd/gateway/dialects/base.py ``call``): ``await rpc``
gives the response or raises the ``AioRpcError``, and ``await rpc.trailing_metadata()``
the carried call's own trailing metadata (the server's rate-limit fields), which a
failed call's ``AioRpcError`` carries as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Sequence
from typing import Any

import grpc
from google.rpc import status_pb2

from trackd.v1 import tracking_pb2, tracking_pb2_grpc

MAX_CALLS = 256
MAX_BYTES = 4 * 1024 * 1024
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_CODES = {code.value[0]: code for code in grpc.StatusCode}

Outcome = tuple[tracking_pb2.TrackEventResponse, grpc.aio.Metadata]
Pending = tuple[tracking_pb2.CarriedTrackEvent, "asyncio.Future[Outcome]"]


def _trailing(entries: Sequence[tracking_pb2.MetadataEntry]) -> list[tuple[str, str]]:
    return [(entry.key, entry.value) for entry in entries]


def _error(status: tracking_pb2.CallStatus,
           trailing: Sequence[tuple[str, str]] = ()) -> grpc.aio.AioRpcError:
    """The error a TrackEvent call of its own would have raised for ``status``."""
    details = status_pb2.Status(code=status.code, message=status.message,
                                details=status.details).SerializeToString()
    return grpc.aio.AioRpcError(
        _CODES.get(status.code, grpc.StatusCode.UNKNOWN), grpc.aio.Metadata(),
        grpc.aio.Metadata(*trailing, (STATUS_DETAILS_KEY, details)), status.message)


def _carriable(request: tracking_pb2.TrackEventRequest) -> bool:
    """Whether ``request`` can be carried: its properties, if any, are JSON bytes, one
    field at any depth of their own (see the module docstring)."""
    return not request.event.HasField("properties")


class CarriedCall:
    """One coalesced TrackEvent call, awaited as a grpc.aio unary call is."""

    def __init__(self, future: asyncio.Future[Outcome]) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, None, tracking_pb2.TrackEventResponse]:
        response, _ = yield from self._future.__await__()
        return response

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        """The call's trailing metadata, once it has ended (an error's included)."""
        try:
            _, trailing = await asyncio.shield(self._future)
        except grpc.aio.AioRpcError as exc:
            metadata: grpc.aio.Metadata = exc.trailing_metadata()
            return metadata
        return trailing


class CoalescingTracking(tracking_pb2_grpc.TrackingServiceStub):
    """The TrackingService stub, with TrackEvent calls coalesced into TrackEvents."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        super().__init__(channel)  # type: ignore[call-arg]  # the .pyi declares __new__ only
        self._unary_track_event = self.TrackEvent
        self.TrackEvent = self._track_event
        self._pending: list[Pending] = []
        self._bytes = 0
        self._timeout = 0.0
        self._sending: set[asyncio.Task[None]] = set()
        # False once the server answered UNIMPLEMENTED (it predates TrackEvents).
        self._carry = True

    def _track_event(
        self, request: tracking_pb2.TrackEventRequest, *,
        metadata: Sequence[tuple[str, str]], timeout: float,
    ) -> Any:
        size = request.ByteSize()
        if size > MAX_BYTES or not self._carry or not _carriable(request):
            return self._unary_track_event(request, metadata=metadata, timeout=timeout)
        if self._pending and self._bytes + size > MAX_BYTES:
            self._flush()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        call = tracking_pb2.CarriedTrackEvent(
            metadata=[tracking_pb2.MetadataEntry(key=k, value=v) for k, v in metadata],
            request=request)
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((call, future))
        self._bytes += size
        self._timeout = max(self._timeout, timeout)
        if len(self._pending) >= MAX_CALLS:
            self._flush()
        return CarriedCall(future)

    def _flush(self) -> None:
        if not self._pending:
            return  # already sent: it filled up before the loop's turn came
        pending, timeout = self._pending, self._timeout
        self._pending, self._bytes, self._timeout = [], 0, 0.0
        task = asyncio.get_running_loop().create_task(self._send(pending, timeout))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, pending: list[Pending], timeout: float) -> None:  # noqa: ASYNC109
        try:
            response = await self.TrackEvents(
                tracking_pb2.TrackEventsRequest(calls=[call for call, _ in pending]),
                timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                # A server older than TrackEvents: call TrackEvent itself from now on.
                self._carry = False
                for call, future in pending:
                    self._resend(call, future, timeout)
                return
            # The RPC as a whole failed (server unreachable, deadline, shutting down):
            # each call gets the error its own TrackEvent would have got.
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        except asyncio.CancelledError:
            for _, future in pending:
                future.cancel()
            raise
        except Exception as exc:  # not an RPC status: each caller sees it, as before
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(pending, response.results, strict=False):
            if future.done():
                continue
            trailing = _trailing(result.trailing_metadata)
            if result.HasField("error"):
                future.set_exception(_error(result.error, trailing))
            else:
                future.set_result((result.response, grpc.aio.Metadata(*trailing)))
        for _, future in pending[len(response.results):]:  # a server that answered too few
            if not future.done():
                future.set_exception(_error(tracking_pb2.CallStatus(
                    code=grpc.StatusCode.INTERNAL.value[0], message="internal error")))

    def _resend(self, call: tracking_pb2.CarriedTrackEvent,
                future: asyncio.Future[Outcome],
                timeout: float) -> None:
        async def unary() -> None:
            try:
                rpc = self._unary_track_event(
                    call.request, metadata=[(e.key, e.value) for e in call.metadata],
                    timeout=timeout)
                response = await rpc
                trailing = await rpc.trailing_metadata()
            except asyncio.CancelledError:
                future.cancel()
                raise
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result((response, trailing))

        task = asyncio.get_running_loop().create_task(unary())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
