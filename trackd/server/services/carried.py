"""TrackingService.TrackEvents: several TrackEvent calls carried in one RPC, each with its
own metadata and its own result.

Each carried call runs :meth:`TrackingService.TrackEvent` itself, with a context that
shows it the carried metadata, so it is authenticated, authorized, validated,
deduplicated and stored exactly as a call of its own would be, and its failure becomes
its own result (the same ``google.rpc.Status``), never another call's. The carried calls
run concurrently, so the write pipeline groups their events into shared database writes.

Each carried call is also rate limited, observed and answered as a call of its own: its
context gives the rate limiter the carried metadata (dialect, client address) and the
TrackEvents call's peer, and keeps the trailing metadata the limiter sets; its result
carries that trailing metadata, on success and on error (where a unary call's would come
from :data:`trackd.server.errors.CALL_METADATA`); and
:func:`trackd.server.observability.observe_carried` counts it as a ``TrackEvent`` call with its own
code and lists it, with its own request id, source and code, in the TrackEvents call's access line
(or, when it ends after that line was written, as the TrackEvents call is cancelled, in a line of
its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from trackd.server.errors import (
    CALL_METADATA,
    INTERNAL,
    InvalidArgument,
    ServiceError,
    status_message,
)
from trackd.server.observability import observe_carried
from trackd.v1 import tracking_pb2

log = logging.getLogger(__name__)

MAX_CARRIED_CALLS = 1000
# What a carried call is counted and logged as (trackd/server/observability.py).
SERVICE = "trackd.v1.TrackingService"
METHOD = "TrackEvent"
_CODES = {code.value[0]: code for code in grpc.StatusCode}

TrackEvent = Callable[[tracking_pb2.TrackEventRequest, Any],
                      Awaitable[tracking_pb2.TrackEventResponse]]


class CarriedContext:
    """The part of a ServicerContext TrackEvent uses, for one carried call: its own
    metadata and trailing metadata, and the peer of the TrackEvents call carrying it."""

    def __init__(self, metadata: Sequence[tuple[str, str]], peer: str) -> None:
        self._metadata = tuple(metadata)
        self._peer = peer
        self.trailing: tuple[tuple[str, str], ...] = ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.trailing = tuple(metadata)


def _entries(metadata: Sequence[tuple[str, str]]) -> list[tracking_pb2.MetadataEntry]:
    return [tracking_pb2.MetadataEntry(key=key, value=value) for key, value in metadata]


OnRefused = Callable[[ServiceError], None]


async def _one(track_event: TrackEvent, call: tracking_pb2.CarriedTrackEvent,
               peer: str, on_refused: OnRefused | None) -> tracking_pb2.TrackEventResult:
    metadata = [(entry.key.lower(), entry.value) for entry in call.metadata]
    context = CarriedContext(metadata, peer)
    CALL_METADATA.set(())  # this task's own: what its rate limit check sets
    with observe_carried(SERVICE, METHOD, metadata, call.request.ByteSize()) as outcome:
        try:
            response = await track_event(call.request, context)
        except ServiceError as exc:
            if on_refused is not None:  # inside observe_carried: the carried call's info
                on_refused(exc)
            status = status_message(exc)
            trailing = CALL_METADATA.get()  # as errors.to_status adds them to a unary call's
        except Exception:
            log.exception("unexpected error in a carried TrackEvent")
            status = INTERNAL
            trailing = CALL_METADATA.get()
        else:
            outcome.code = grpc.StatusCode.OK
            return tracking_pb2.TrackEventResult(
                response=response, trailing_metadata=_entries(context.trailing))
        outcome.code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        return tracking_pb2.TrackEventResult(
            error=tracking_pb2.CallStatus(
                code=status.code, message=status.message, details=status.details),
            trailing_metadata=_entries(trailing))


async def track_events(track_event: TrackEvent, request: tracking_pb2.TrackEventsRequest,
                       context: grpc.aio.ServicerContext[Any, Any],
                       on_refused: OnRefused | None = None
                       ) -> tracking_pb2.TrackEventsResponse:
    count = len(request.calls)
    if not 1 <= count <= MAX_CARRIED_CALLS:
        raise InvalidArgument.one(
            "calls", f"TrackEvents carries 1 to {MAX_CARRIED_CALLS} calls, got {count}")
    peer = context.peer()
    results = await asyncio.gather(
        *(_one(track_event, call, peer, on_refused) for call in request.calls))
    return tracking_pb2.TrackEventsResponse(results=results)
