"""``GET /console``: the page a person watches events arrive on, served by the gateway.

The page is static files (``trackd/gateway/console_static``: HTML, CSS, two scripts; no build step,
nothing from another origin), sent with :data:`trackd.gateway.front_door.PAGE_CSP`. Everything
it shows comes from public RPCs the gateway only translates, each called with the key the
page sends as ``Authorization: Bearer <key>`` (never in a URL; the page keeps it in the
tab's sessionStorage):

- ``GET /console/api/events``: ``TrackingService.Subscribe`` from now, as a stream of
  server-sent events (:mod:`trackd.gateway.console_streams`);
- ``GET /console/api/decisions``: ``DecisionService.WatchDecisions`` from ten minutes back;
- ``GET /console/api/overview``: ``DecisionService.GetOverview`` (per-minute counts of the
  last hour, kept by the server's decision recorder) and ``WebhookService.ListEndpoints``
  (which needs ``webhooks:manage``: a key without it gets ``"webhooks": null`` and the
  reason).

A missing or malformed ``Authorization`` is a 401, a key the server refuses its 401 or
403, each as ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format, timestamp_pb2

from trackd.gateway.dialects.base import json_response
from trackd.gateway.errors_middleware import render_plain
from trackd.gateway.front_door import page_headers
from trackd.gateway.grpc_errors import Problem, problem_from_rpc_error
from trackd.gateway.settings import GATEWAY_SETTINGS
from trackd.v1 import (
    decisions_pb2,
    decisions_pb2_grpc,
    tracking_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
)
from trackd.wire.limits import MAX_MESSAGE_BYTES
from trackd.wire.metadata import REQUEST_ID_METADATA, new_request_id, sane_request_id

STATIC = Path(__file__).with_name("console_static")
PAGE_PATH = "/console"
ASSETS_PATH = "/console/assets"
API_PATH = "/console/api"
KEY_HELP = "send an API key holding events:read as: Authorization: Bearer <key>"


class ConsoleStubs:
    """The stubs the console calls, on a channel of its own (long-lived streams)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.tracking = tracking_pb2_grpc.TrackingServiceStub(channel)
        self.decisions = decisions_pb2_grpc.DecisionServiceStub(channel)
        self.webhooks = webhooks_pb2_grpc.WebhookServiceStub(channel)


STUBS = web.AppKey("console_stubs", ConsoleStubs)


class Unauthorized(Exception):
    """No usable Authorization header; the 401 answer's message is the argument."""


def credentials(request: web.Request) -> list[tuple[str, str]]:
    """The call metadata for this request's key; raises Unauthorized when there is none,
    or when it could not travel as gRPC metadata (only printable ASCII can)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized(f"no API key: {KEY_HELP}")
    if not (key.isascii() and key.isprintable()):
        raise Unauthorized("invalid API key")
    request_id = sane_request_id(request.headers.get("X-Request-Id")) or new_request_id()
    return [("authorization", f"Bearer {key}"), (REQUEST_ID_METADATA, request_id)]


def refused(error: grpc.aio.AioRpcError) -> web.Response:
    """The server's refusal (a bad key: 401; a key without the scope: 403) as JSON."""
    return render_plain(problem_from_rpc_error(error))


def unauthorized(refusal: Unauthorized) -> web.Response:
    return render_plain(Problem(401, str(refusal)))


def iso(stamp: timestamp_pb2.Timestamp) -> str:
    """A Timestamp as ISO-8601 UTC with milliseconds."""
    return f"{stamp.ToDatetime().isoformat(timespec='milliseconds')}Z"


def _endpoint(endpoint: webhooks_pb2.Endpoint) -> dict[str, Any]:
    return {"id": endpoint.id, "url": endpoint.url,
            "state": webhooks_pb2.EndpointState.Name(endpoint.state)
            .removeprefix("ENDPOINT_STATE_").lower(),
            "lag_seconds": endpoint.lag_seconds, "dead_letters": endpoint.dead_letters,
            "queued": endpoint.queued, "last_error": endpoint.last_error,
            "event_names": list(endpoint.event_names)}


def overview_json(overview: decisions_pb2.GetOverviewResponse) -> dict[str, Any]:
    return {
        "minutes": [{"minute": iso(minute.minute), "stored": minute.stored,
                     "duplicates": minute.duplicates, "rate_limited": minute.rate_limited,
                     "refused": {count.name: count.count for count in minute.refused}}
                    for minute in overview.minutes],
        "top_event_names": [{"name": n.name, "count": n.count}
                            for n in overview.top_event_names],
        "top_violations": [{"name": n.name, "count": n.count}
                           for n in overview.top_violations],
    }


async def overview(request: web.Request) -> web.Response:
    """GET /console/api/overview."""
    try:
        metadata = credentials(request)
    except Unauthorized as refusal:
        return unauthorized(refusal)
    stubs = request.app[STUBS]
    timeout = request.app[GATEWAY_SETTINGS].rpc_timeout_seconds
    try:
        counts = await stubs.decisions.GetOverview(
            decisions_pb2.GetOverviewRequest(), metadata=metadata, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return refused(exc)
    body = overview_json(counts)
    try:
        endpoints = await stubs.webhooks.ListEndpoints(
            webhooks_pb2.ListEndpointsRequest(), metadata=metadata, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        body["webhooks"] = None
        body["webhooks_error"] = problem_from_rpc_error(exc).message
    else:
        body["webhooks"] = [_endpoint(endpoint) for endpoint in endpoints.endpoints]
        body["webhooks_error"] = None
    return json_response(body, headers={"Cache-Control": "no-store"})


async def page(request: web.Request) -> web.StreamResponse:
    """GET /console: the page itself."""
    return page_headers(web.Response(body=(STATIC / "index.html").read_bytes(),
                                     content_type="text/html", charset="utf-8"))


def struct_json(message: Any) -> Any:
    """A Struct as JSON, integral numbers as integers (a Struct holds only doubles)."""
    return _integral(json_format.MessageToDict(message))


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2 ** 53:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


async def _console_channel(app: web.Application) -> AsyncIterator[None]:
    channel = grpc.aio.insecure_channel(
        app[GATEWAY_SETTINGS].grpc_target,
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    app[STUBS] = ConsoleStubs(channel)
    yield
    await channel.close(grace=None)


def add_routes(app: web.Application) -> None:
    from trackd.gateway import console_streams  # the streams use this module's helpers

    app.cleanup_ctx.append(_console_channel)
    app[console_streams.OPEN] = set()
    app.on_shutdown.append(console_streams.end_streams)
    app.router.add_get(PAGE_PATH, page)
    app.router.add_static(ASSETS_PATH, STATIC)
    app.router.add_get(f"{API_PATH}/overview", overview)
    app.router.add_get(f"{API_PATH}/events", console_streams.events)
    app.router.add_get(f"{API_PATH}/decisions", console_streams.decisions)
