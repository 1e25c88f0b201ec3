"""TrackingService.TrackEvents: several TrackEvent calls carried in one RPC, each with its
own metadata and its own result.

Each carried call runs :meth:`TrackingService.TrackEvent` itself, with a context that
shows it the carried metadata, so it is authenticated, authorized, validated,
deduplicated and stored exactly as a call of its own would be, and its failure becomes
its own result (the same ``google.rpc.Status``), never another call's. The carried calls
run concurrently, so the write pipeline groups their events into shared database writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from server.errors import INTERNAL, InvalidArgument, ServiceError, status_message
from trackd.v1 import tracking_pb2

log = logging.getLogger(__name__)

MAX_CARRIED_CALLS = 1000

TrackEvent = Callable[[tracking_pb2.TrackEventRequest, Any],
                      Awaitable[tracking_pb2.TrackEventResponse]]


class CarriedContext:
    """The part of a ServicerContext TrackEvent reads: the carried call's metadata."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


async def _one(track_event: TrackEvent,
               call: tracking_pb2.CarriedTrackEvent) -> tracking_pb2.TrackEventResult:
    context = CarriedContext([(entry.key.lower(), entry.value) for entry in call.metadata])
    try:
        response = await track_event(call.request, context)
    except ServiceError as exc:
        status = status_message(exc)
    except Exception:
        log.exception("unexpected error in a carried TrackEvent")
        status = INTERNAL
    else:
        return tracking_pb2.TrackEventResult(response=response)
    return tracking_pb2.TrackEventResult(error=tracking_pb2.CallStatus(
        code=status.code, message=status.message, details=status.details))


async def track_events(track_event: TrackEvent, request: tracking_pb2.TrackEventsRequest,
                       context: grpc.aio.ServicerContext[Any, Any]
                       ) -> tracking_pb2.TrackEventsResponse:
    count = len(request.calls)
    if not 1 <= count <= MAX_CARRIED_CALLS:
        raise InvalidArgument.one(
            "calls", f"TrackEvents carries 1 to {MAX_CARRIED_CALLS} calls, got {count}")
    results = await asyncio.gather(*(_one(track_event, call) for call in request.calls))
    return tracking_pb2.TrackEventsResponse(results=results)
