"""The console's two streams as server-sent events (``text/event-stream``), read by the
page with a streamed ``fetch`` (EventSource cannot send an ``Authorization`` header).

``GET /console/api/events`` translates ``TrackingService.Subscribe`` (from now, or
from a cursor), each
stored event an ``event: event``; ``GET /console/api/decisions`` translates
``DecisionService.WatchDecisions`` (from :data:`DECISIONS_REPLAY_SECONDS` back), each
decision an ``event: decision``, each note that some were not recorded an ``event:
sampling``. A comment line every :data:`HEARTBEAT_SECONDS` keeps proxies from closing an
idle stream and tells the gateway when the page has gone, which cancels the RPC.

The key is checked before the answer starts, by the streaming call itself: the server
sends its initial metadata once it has accepted the key, its ``events:read`` scope and the
request (:func:`opened` waits for it), so a bad key is a plain 401/403 JSON answer, not a
stream, at the cost of no call but the stream's own (as is a database that is down: 503);
a request the server refuses (a bad cursor), and a stream the server ends later, end with
an ``event: error`` carrying the same envelope.
Open streams end when the gateway shuts down (:func:`end_streams`, an ``on_shutdown``
hook): they would otherwise hold its graceful stop for its whole grace period.

A refusal's HTTP status and field name are the ones the door's dialect answered with
(VibeFollow's validation errors are 422, its field ``properties.$a``); a gRPC call's
status is null.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import orjson
from aiohttp import web
from google.protobuf.message import Message

from trackd.gateway.console import (
    STUBS,
    Unauthorized,
    credentials,
    iso,
    refused,
    struct_json,
    unauthorized,
)
from trackd.gateway.dialects.amplitude import AMPLITUDE
from trackd.gateway.dialects.cueflow import CUEFLOW
from trackd.gateway.dialects.databuddy import DATABUDDY
from trackd.gateway.dialects.flywheel import FLYWHEEL
from trackd.gateway.dialects.mixpanel import MIXPANEL
from trackd.gateway.dialects.posthog import POSTHOG
from trackd.gateway.dialects.segment import SEGMENT
from trackd.gateway.dialects.vibefollow import VIBEFOLLOW
from trackd.gateway.grpc_errors import HTTP_STATUS, Problem, problem_from_rpc_error
from trackd.gateway.settings import GATEWAY_SETTINGS
from trackd.v1 import decisions_pb2, plans_pb2, tracking_pb2

HEARTBEAT_SECONDS = 10.0
DECISIONS_REPLAY_SECONDS = 600
# Messages read ahead of a slow page; past this the RPC waits (HTTP/2 flow control).
QUEUE = 256
DIALECTS = {dialect.name: dialect for dialect in (
    VIBEFOLLOW, FLYWHEEL, DATABUDDY, CUEFLOW, SEGMENT, POSTHOG, AMPLITUDE, MIXPANEL)}
_CODES = {code.value[0]: code for code in grpc.StatusCode}
OPEN = web.AppKey("console_open_streams", set)
# Refusals answered as plain JSON before a stream starts: the key's, and the service's
# (unavailable, or no answer in time). The request's own (a bad cursor) is the stream's
# ``event: error``, as when the server ends a stream later.
PLAIN_REFUSALS = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
KINDS = {value: name.removeprefix("DECISION_KIND_").lower()
         for name, value in decisions_pb2.DecisionKind.items()}
VIOLATION_KINDS = {value: name.removeprefix("PLAN_VIOLATION_KIND_").lower()
                   for name, value in plans_pb2.PlanViolationKind.items()}


def violations_json(violations: Iterable[plans_pb2.PlanViolation],
                    rename: Callable[[str], str] = str) -> list[dict[str, str]]:
    """Plan violations as the page shows them: kind (``wrong_type``), field (through
    ``rename``: a door's own field name), message."""
    return [{"kind": VIOLATION_KINDS.get(v.kind, "unspecified"), "field": rename(v.field),
             "message": v.message} for v in violations]


def event_json(item: tracking_pb2.SubscribeResponse) -> dict[str, Any]:
    event = item.event
    context = {name: getattr(event.context, name) for name in
               ("namespace", "session_id", "source", "website_id")
               if getattr(event.context, name)}
    return {"id": event.event_id, "name": event.name,
            "user_id": event.external_user_id or None,
            "anonymous_id": event.anonymous_id or None,
            "timestamp": iso(event.timestamp), "received_at": iso(item.received_at),
            "source": item.source or None, "request_id": item.request_id or None,
            "properties": struct_json(event.properties), "context": context,
            "plan_version": item.plan_version or None,
            "violations": violations_json(item.plan_violations), "cursor": item.cursor}


def http_status(source: str, code: int, reason: str) -> int | None:
    """What the door's dialect answered a request refused with ``code`` (None for gRPC)."""
    dialect = DIALECTS.get(source)
    status_code = _CODES.get(code)
    if dialect is None or status_code is None:
        return None
    status = dialect.status_overrides.get(status_code) or HTTP_STATUS.get(status_code, 500)
    # Rendered, because a renderer may answer another status (Amplitude's bad key is
    # its 400, the one status its SDK does not retry).
    return dialect.render(Problem(status, "", reason=reason)).status


def decision_json(item: decisions_pb2.WatchDecisionsResponse) -> tuple[str, dict[str, Any]]:
    if item.HasField("sampling"):
        return "sampling", {"not_recorded": item.sampling.not_recorded,
                            "time": iso(item.sampling.time)}
    d = item.decision
    code = _CODES.get(d.code)
    dialect = DIALECTS.get(d.source)
    rename = dialect.field_name if dialect else str
    plan_violations = violations_json(d.plan_violations, rename)
    return "decision", {
        "id": d.id, "kind": KINDS.get(d.kind, "unspecified"), "time": iso(d.time),
        "request_id": d.request_id, "source": d.source, "method": d.method,
        "grpc_code": code.name if code and d.code else None,
        "http_status": http_status(d.source, d.code, d.reason) if d.code else None,
        # The field as the door's answer named it (VibeFollow's `properties.$a`, not the
        # RPC's `event.properties.$a`).
        "reason": d.reason, "field": dialect.field_name(d.field) if dialect and d.field
        else d.field, "description": d.description,
        "events": d.events, "event_ids": list(d.event_ids),
        "event_names": list(d.event_names),
        # The text of each, with the field named as the door's answer named it too.
        "violations": [f"{v['field']}: {v['message']}" for v in plan_violations]
        if plan_violations else list(d.violations),
        "plan_violations": plan_violations}


async def opened(call: Any, within: float) -> None:
    """Return once the server has opened ``call`` (its initial metadata, which the server
    sends once the key, its scope and the request are accepted); raise the refusal
    (``AioRpcError``) when it ended instead, or DEADLINE_EXCEEDED after ``within`` seconds."""
    try:
        await asyncio.wait_for(call.initial_metadata(), within)
    except TimeoutError:
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(),
            "Deadline Exceeded") from None
    if call.done():  # refused: no initial metadata of its own, only the status
        await call.read()  # raises the AioRpcError (a stream that ended OK: nothing)


def _frame(kind: str, data: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _stream(request: web.Request, open_call: Callable[[list[tuple[str, str]]], Any],
                  render: Callable[[Any], tuple[str, dict[str, Any]]]) -> web.StreamResponse:
    try:
        metadata = credentials(request)
    except Unauthorized as missing:
        return unauthorized(missing)
    call = open_call(metadata)
    refusal: grpc.aio.AioRpcError | None = None
    try:  # the key, checked by the stream itself before the answer starts
        await opened(call, request.app[GATEWAY_SETTINGS].rpc_timeout_seconds)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in PLAIN_REFUSALS:
            call.cancel()
            return refused(exc)
        refusal = exc  # the request's own (a cursor): the stream's first frame
    queue: asyncio.Queue[Message | grpc.aio.AioRpcError | None] = asyncio.Queue(QUEUE)

    async def pump() -> None:
        if refusal is not None:
            await queue.put(refusal)
            return
        try:
            async for message in call:
                await queue.put(message)
            await queue.put(None)
        except grpc.aio.AioRpcError as exc:
            await queue.put(exc)

    handler = asyncio.current_task()
    open_streams: set[asyncio.Task[Any]] = request.app[OPEN]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    reader = asyncio.create_task(pump())
    if handler is not None:
        open_streams.add(handler)
    try:
        await response.write(b": open\n\n")
        beat = time.monotonic()
        while True:
            try:
                item = await asyncio.wait_for(
                    queue.get(), max(0.0, HEARTBEAT_SECONDS - (time.monotonic() - beat)))
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                beat = time.monotonic()
                continue
            if item is None:
                break
            if isinstance(item, grpc.aio.AioRpcError):
                problem = problem_from_rpc_error(item)
                await response.write(_frame("error", {"error": {
                    "code": problem.code, "message": problem.message}}))
                break
            await response.write(_frame(*render(item)))
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the page went away, or the gateway is stopping
    finally:
        open_streams.discard(handler)
        call.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await reader
    return response


async def end_streams(app: web.Application) -> None:
    """Cancel every open stream's handler (the gateway is stopping)."""
    handlers: set[asyncio.Task[Any]] = app[OPEN]
    for handler in list(handlers):
        handler.cancel()


async def events(request: web.Request) -> web.StreamResponse:
    """GET /console/api/events: every event of the key's project stored from now on, or
    just after ``?cursor=`` (an event's ``cursor``: the page resumes a broken stream
    there, so a reconnect loses nothing)."""
    stubs = request.app[STUBS]
    cursor = request.query.get("cursor", "")
    return await _stream(
        request, lambda metadata: stubs.tracking.Subscribe(
            tracking_pb2.SubscribeRequest(cursor=cursor) if cursor
            else tracking_pb2.SubscribeRequest(), metadata=metadata),
        lambda item: ("event", event_json(item)))


async def decisions(request: web.Request) -> web.StreamResponse:
    """GET /console/api/decisions: the project's decisions, from ten minutes back."""
    stubs = request.app[STUBS]

    def open_call(metadata: list[tuple[str, str]]) -> Any:
        since = decisions_pb2.WatchDecisionsRequest()
        since.since.FromSeconds(int(time.time()) - DECISIONS_REPLAY_SECONDS)
        return stubs.decisions.WatchDecisions(since, metadata=metadata)

    return await _stream(request, open_call, decision_json)
