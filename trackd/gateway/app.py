"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2_grpc

from trackd.gateway import console, front_door, health, metrics
from trackd.gateway.access import access_middleware
from trackd.gateway.body import HANDLER_ARGS
from trackd.gateway.dialects import (
    amplitude,
    cueflow,
    cueflow_audiences,
    databuddy_handlers,
    flywheel,
    mixpanel,
    posthog,
    segment,
    shared_paths,
    vibefollow,
)
from trackd.gateway.errors_middleware import error_envelopes
from trackd.gateway.hop import CoalescingTracking
from trackd.gateway.openapi import routes as openapi_routes
from trackd.gateway.settings import (
    AUDIENCES,
    GATEWAY_SETTINGS,
    TRACKING,
    USERS,
    WEBSITES,
    GatewaySettings,
)
from trackd.v1 import (
    audiences_pb2_grpc,
    users_pb2_grpc,
    websites_pb2_grpc,
)
from trackd.wire.limits import MAX_MESSAGE_BYTES


def create_app(settings: GatewaySettings | None = None) -> web.Application:
    """The gateway, calling the gRPC server at ``settings.grpc_target``; serve it with
    :class:`trackd.gateway.http_protocol.GatewayRunner` so the HTTP parser's refusals are JSON."""
    settings = settings or GatewaySettings()
    # The access middleware is outermost: it sees every answer, whoever gave it (the
    # envelopes middleware renders the ones aiohttp would give as text).
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[access_middleware, error_envelopes],
                          handler_args=HANDLER_ARGS)
    app[GATEWAY_SETTINGS] = settings
    app.cleanup_ctx.append(_grpc_channel)
    vibefollow.add_routes(app)
    flywheel.add_routes(app)
    cueflow.add_routes(app)
    cueflow_audiences.add_routes(app)
    shared_paths.add_routes(app)
    databuddy_handlers.add_routes(app)
    segment.add_routes(app)
    posthog.add_routes(app)
    amplitude.add_routes(app)
    mixpanel.add_routes(app)
    health.add_routes(app)
    openapi_routes.add_routes(app)
    metrics.add_routes(app)
    front_door.add_routes(app)
    console.add_routes(app)
    return app


async def _grpc_channel(app: web.Application) -> AsyncIterator[None]:
    # One channel for the app's lifetime: HTTP/2 multiplexes every request over it.
    channel = grpc.aio.insecure_channel(
        app[GATEWAY_SETTINGS].grpc_target,
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    # Single events coalesced into TrackEvents calls: see trackd/gateway/hop.py.
    app[TRACKING] = CoalescingTracking(channel)
    app[USERS] = users_pb2_grpc.UserServiceStub(channel)
    app[WEBSITES] = websites_pb2_grpc.WebsiteServiceStub(channel)
    app[AUDIENCES] = audiences_pb2_grpc.AudienceServiceStub(channel)
    app[health.HEALTH] = health_pb2_grpc.HealthStub(channel)
    yield
    await channel.close()
