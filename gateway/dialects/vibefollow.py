"""VibeFollow: ``/api/v1/events`` and ``/api/v1/events/batch`` (contracts.md section 1).

Success is 202 ``{"data":{"accepted":true}}``; every failure is
``{"errors":[{"code","message","field"}]}`` with 400 for a body that is not JSON, 422 for
one that fails validation (``field`` indexed in a batch: ``events[3].external_user_id``),
401, 403, 413, 429 and 503 with ``Retry-After``. The ``Idempotency-Key`` header is the
RPC's idempotency_key.
"""

from __future__ import annotations

from datetime import datetime
from typing import (
    Annotated,
    Any,
    NotRequired,  # pydantic needs these on 3.11
)

import grpc
from aiohttp import web
from pydantic import ConfigDict, StringConstraints, TypeAdapter, with_config
from typing_extensions import TypedDict

from gateway.body import parse_json, read_body
from gateway.convert import UnencodableValue, fill_struct, problem, timestamp
from gateway.dialects.base import Dialect, bearer_metadata, call, json_response
from gateway.grpc_errors import Problem
from gateway.settings import GATEWAY_SETTINGS, TRACKING
from trackd.v1 import tracking_pb2

NonEmpty = Annotated[str, StringConstraints(min_length=1)]


_STRICT = ConfigDict(strict=True, extra="ignore")


@with_config(_STRICT)
class VibeFollowEvent(TypedDict):
    """One event, as the single-event body and as each item of a batch."""

    external_user_id: NonEmpty
    name: NonEmpty
    properties: NotRequired[dict[str, Any] | None]
    # Beyond the vendor page: an explicit occurrence id (dedup) and time.
    event_id: NotRequired[str]
    timestamp: NotRequired[datetime]


@with_config(_STRICT)
class VibeFollowBatch(TypedDict):
    events: list[VibeFollowEvent]


EVENT = TypeAdapter(VibeFollowEvent)
BATCH = TypeAdapter(VibeFollowBatch)

ACCEPTED = {"data": {"accepted": True}}


def _field_name(path: str) -> str:
    if path == "idempotency_key":
        return "Idempotency-Key"
    return path.removeprefix("event.")


def _render(problem: Problem) -> web.Response:
    error: dict[str, str] = {"code": problem.code, "message": problem.message}
    if problem.field:
        error["field"] = problem.field
    headers = {"Retry-After": str(problem.retry_after)} if problem.retry_after else None
    return json_response({"errors": [error]}, problem.status, headers)


VIBEFOLLOW = Dialect(
    name="vibefollow",
    render=_render,
    status_overrides={grpc.StatusCode.INVALID_ARGUMENT: 422},
    field_name=_field_name,
)


def _event(item: VibeFollowEvent, path: str) -> tracking_pb2.Event:
    event = tracking_pb2.Event(
        name=item["name"],
        external_user_id=item["external_user_id"],
        event_id=item.get("event_id", ""),
    )
    if "timestamp" in item:
        event.timestamp.CopyFrom(timestamp(item["timestamp"]))
    properties = item.get("properties")
    if properties is not None:
        try:
            fill_struct(event.properties, properties, f"{path}properties")
        except UnencodableValue as exc:
            raise problem(VIBEFOLLOW.invalid_status, exc) from exc
    return event


async def _body(request: web.Request) -> bytes:
    return await read_body(request, request.app[GATEWAY_SETTINGS].max_body_bytes)


@VIBEFOLLOW.handler
async def track_event(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/events: one event for a user."""
    metadata = bearer_metadata(request)
    item = parse_json(EVENT, await _body(request), invalid_status=VIBEFOLLOW.invalid_status)
    message = tracking_pb2.TrackEventRequest(
        event=_event(item, ""), idempotency_key=request.headers.get("Idempotency-Key", ""))
    await call(request, request.app[TRACKING].TrackEvent, message, metadata)
    return json_response(ACCEPTED, 202)


@VIBEFOLLOW.handler
async def batch_track(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/events/batch: 1 to 500 events, all or nothing."""
    metadata = bearer_metadata(request)
    batch = parse_json(BATCH, await _body(request), invalid_status=VIBEFOLLOW.invalid_status)
    message = tracking_pb2.BatchTrackRequest(
        events=[_event(item, f"events[{i}].") for i, item in enumerate(batch["events"])],
        idempotency_key=request.headers.get("Idempotency-Key", ""))
    await call(request, request.app[TRACKING].BatchTrack, message, metadata)
    return json_response(ACCEPTED, 202)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/events", track_event)
    app.router.add_post("/api/v1/events/batch", batch_track)
