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
be upgraded before its servers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc
from google.rpc import status_pb2

from trackd.v1 import tracking_pb2, tracking_pb2_grpc

MAX_CALLS = 256
MAX_BYTES = 4 * 1024 * 1024
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_CODES = {code.value[0]: code for code in grpc.StatusCode}

Pending = tuple[tracking_pb2.CarriedTrackEvent, "asyncio.Future[tracking_pb2.TrackEventResponse]"]


def _error(status: tracking_pb2.CallStatus) -> grpc.aio.AioRpcError:
    """The error a TrackEvent call of its own would have raised for ``status``."""
    details = status_pb2.Status(code=status.code, message=status.message,
                                details=status.details).SerializeToString()
    return grpc.aio.AioRpcError(
        _CODES.get(status.code, grpc.StatusCode.UNKNOWN), grpc.aio.Metadata(),
        grpc.aio.Metadata((STATUS_DETAILS_KEY, details)), status.message)


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

    async def _track_event(
        self, request: tracking_pb2.TrackEventRequest, *,
        metadata: Sequence[tuple[str, str]], timeout: float,  # noqa: ASYNC109
    ) -> tracking_pb2.TrackEventResponse:
        size = request.ByteSize()
        if size > MAX_BYTES or not self._carry:
            response: tracking_pb2.TrackEventResponse = await self._unary_track_event(
                request, metadata=metadata, timeout=timeout)
            return response
        if self._pending and self._bytes + size > MAX_BYTES:
            self._flush()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tracking_pb2.TrackEventResponse] = loop.create_future()
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
        return await future

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
            if result.HasField("error"):
                future.set_exception(_error(result.error))
            else:
                future.set_result(result.response)
        for _, future in pending[len(response.results):]:  # a server that answered too few
            if not future.done():
                future.set_exception(_error(tracking_pb2.CallStatus(
                    code=grpc.StatusCode.INTERNAL.value[0], message="internal error")))

    def _resend(self, call: tracking_pb2.CarriedTrackEvent,
                future: asyncio.Future[tracking_pb2.TrackEventResponse],
                timeout: float) -> None:
        async def unary() -> None:
            try:
                response = await self._unary_track_event(
                    call.request, metadata=[(e.key, e.value) for e in call.metadata],
                    timeout=timeout)
            except asyncio.CancelledError:
                future.cancel()
                raise
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(response)

        task = asyncio.get_running_loop().create_task(unary())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
