"""Where the gRPC API listens unless told otherwise: the server binds it, the gateway
dials it."""

from __future__ import annotations

DEFAULT_GRPC_PORT = 50051
