"""The aiohttp application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from aiohttp import web

from gateway.dialects import (
    cueflow,
    cueflow_audiences,
    databuddy,
    flywheel,
    shared_paths,
    vibefollow,
)
from gateway.hop import CoalescingTracking
from gateway.ratelimit import RateLimiter
from gateway.settings import (
    AUDIENCES,
    GATEWAY_SETTINGS,
    RATE_LIMITER,
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

# Matches the server's limit; a 5 MB JSON body becomes a somewhat larger message.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def create_app(settings: GatewaySettings | None = None) -> web.Application:
    """The gateway, calling the gRPC server at ``settings.grpc_target``."""
    settings = settings or GatewaySettings()
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[GATEWAY_SETTINGS] = settings
    app[RATE_LIMITER] = RateLimiter()
    app.cleanup_ctx.append(_grpc_channel)
    vibefollow.add_routes(app)
    flywheel.add_routes(app)
    cueflow.add_routes(app)
    cueflow_audiences.add_routes(app)
    shared_paths.add_routes(app)
    databuddy.add_routes(app)
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
    # Single events coalesced into TrackEvents calls: see gateway/hop.py.
    app[TRACKING] = CoalescingTracking(channel)
    app[USERS] = users_pb2_grpc.UserServiceStub(channel)
    app[WEBSITES] = websites_pb2_grpc.WebsiteServiceStub(channel)
    app[AUDIENCES] = audiences_pb2_grpc.AudienceServiceStub(channel)
    yield
    await channel.close()
