"""The gateway's own settings (filled from the one settings object in :mod:`trackd.cli`)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from trackd.v1 import audiences_pb2_grpc, tracking_pb2_grpc, users_pb2_grpc, websites_pb2_grpc
from trackd.wire.endpoints import DEFAULT_GRPC_PORT

DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class GatewaySettings:
    grpc_target: str = f"127.0.0.1:{DEFAULT_GRPC_PORT}"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    rpc_timeout_seconds: float = 30.0


GATEWAY_SETTINGS = web.AppKey("gateway_settings", GatewaySettings)
TRACKING = web.AppKey("tracking_stub", tracking_pb2_grpc.TrackingServiceStub)
USERS = web.AppKey("users_stub", users_pb2_grpc.UserServiceStub)
WEBSITES = web.AppKey("websites_stub", websites_pb2_grpc.WebsiteServiceStub)
AUDIENCES = web.AppKey("audiences_stub", audiences_pb2_grpc.AudienceServiceStub)
