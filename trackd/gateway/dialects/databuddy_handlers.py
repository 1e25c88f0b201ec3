"""Databuddy's handlers: ``POST /track``, ``POST /identify`` and their CORS preflights.

What the dialect is (its limits, messages, request bodies, credentials and CORS) lives in
:mod:`trackd.gateway.dialects.databuddy`, described there; this turns its events into trackd's
and calls the server.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from google.protobuf import timestamp_pb2

from trackd.gateway.convert import (
    DEPTH_IDENTIFY_TRAITS,
    fill_struct,
    properties_json,
    timestamp,
    timestamp_from_millis,
)
from trackd.gateway.dialects.base import FIELD_NAME, call, json_response
from trackd.gateway.dialects.databuddy import (
    DATABUDDY,
    DATABUDDY_MAX_FUTURE,
    DATABUDDY_MAX_PROPERTIES_BYTES,
    DATABUDDY_MAX_PROPERTY_KEY_CHARS,
    DATABUDDY_MAX_PROPERTY_KEYS,
    IDENTIFY_BODY,
    PREFLIGHT_HEADERS,
    TRACK_BODY,
    DatabuddyEvent,
    check_origin,
    credentials_metadata,
    fail,
    invalid,
    query_website_id,
    single_event_field,
    with_cors,
)
from trackd.gateway.settings import TRACKING
from trackd.v1 import tracking_pb2
from trackd.wire.limits import TIMESTAMP_MIN_SECONDS


def _timestamp(value: int | float | str) -> timestamp_pb2.Timestamp:
    """Unix milliseconds or ISO-8601 (UTC when without an offset), not far in the future."""
    latest = datetime.now(UTC) + DATABUDDY_MAX_FUTURE
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise invalid() from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if when > latest:
            raise invalid()
        # Beyond a Timestamp's range: the handler answers UnencodableValue with 400.
        return timestamp(when, "timestamp")
    if not math.isfinite(value) or value > latest.timestamp() * 1000 \
            or value < TIMESTAMP_MIN_SECONDS * 1000:
        raise invalid()
    return timestamp_from_millis(value)


def _properties(values: dict[str, Any]) -> None:
    """Databuddy's bounds on properties: keys, key lengths, serialized size."""
    if len(values) > DATABUDDY_MAX_PROPERTY_KEYS:
        raise invalid()
    if any(len(key) > DATABUDDY_MAX_PROPERTY_KEY_CHARS for key in values):
        raise invalid()
    try:
        size = len(orjson.dumps(values))
    except orjson.JSONEncodeError as exc:  # integers beyond 64 bits, nesting past 255
        raise invalid() from exc
    if size > DATABUDDY_MAX_PROPERTIES_BYTES:
        raise invalid()


def _event(item: DatabuddyEvent) -> tracking_pb2.Event:
    user = item.get("profileId") or ""
    anonymous = item.get("anonymousId") or ""
    if not user and not anonymous:
        anonymous = str(uuid.uuid4())
    event = tracking_pb2.Event(name=item["name"], external_user_id=user,
                               anonymous_id=anonymous, event_id=item.get("eventId") or "")
    when = item.get("timestamp")
    if when is not None:
        event.timestamp.CopyFrom(_timestamp(when))
    properties = item.get("properties")
    if properties is not None:
        _properties(properties)
        event.properties_json = properties_json(properties, "properties")
    website = item.get("websiteId")
    context = tracking_pb2.EventContext(
        namespace=item.get("namespace") or "", session_id=item.get("sessionId") or "",
        source=item.get("source") or "", website_id=str(website) if website else "")
    if context.ByteSize():
        event.context.CopyFrom(context)
    return event


# --- routes -----------------------------------------------------------------------------


@with_cors
@DATABUDDY.handler
async def track(request: web.Request) -> web.StreamResponse:
    """POST /track: one event, or an array of them (all or nothing)."""
    metadata = await credentials_metadata(request)
    body = await DATABUDDY.body(request, TRACK_BODY)
    items = body if isinstance(body, list) else [body]
    if not items:
        raise invalid()
    if not isinstance(body, list):  # one event: its fields are named as it sent them
        request[FIELD_NAME] = single_event_field
    message = tracking_pb2.BatchTrackRequest(events=[_event(item) for item in items])
    response = await call(request, request.app[TRACKING].BatchTrack, message, metadata)
    return json_response({"status": "success", "type": "custom_event",
                          "count": response.stored_count})


@with_cors
@DATABUDDY.handler
async def identify(request: web.Request) -> web.StreamResponse:
    """POST /identify: upsert a profile and link an anonymous id to it."""
    metadata = await credentials_metadata(request)
    body = await DATABUDDY.body(request, IDENTIFY_BODY)
    message = tracking_pb2.IdentifyRequest(
        external_id=body["profileId"], anonymous_id=body.get("anonymousId") or "",
        website_id=str(body["websiteId"]))
    traits = body.get("traits")
    if traits is not None:
        fill_struct(message.traits, traits, "traits", DEPTH_IDENTIFY_TRAITS)
    await call(request, request.app[TRACKING].Identify, message, metadata)
    return json_response({"status": "success", "type": "identify"})


@with_cors
@DATABUDDY.handler
async def preflight(request: web.Request) -> web.StreamResponse:
    """OPTIONS /track, /identify: CORS preflight, for the website's own origins only."""
    website_id = query_website_id(request)
    origin = request.headers.get("Origin", "")
    if not website_id or not origin or not (origin.isascii() and origin.isprintable()):
        raise fail(403, "ORIGIN_NOT_AUTHORIZED")
    await check_origin(request, website_id, origin)
    return web.Response(status=204, headers=PREFLIGHT_HEADERS)


def add_routes(app: web.Application) -> None:
    # POST /track is shared with Mixpanel: trackd.gateway.dialects.shared_paths owns the route
    # and hands Databuddy's bodies (JSON, or a text/plain beacon) to track.
    app.router.add_post("/identify", identify)
    for path in ("/track", "/identify"):
        app.router.add_route("OPTIONS", path, preflight)
