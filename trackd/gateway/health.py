"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness); neither needs a key.

``/healthz`` answers 200 ``{"status":"ok"}`` whenever this process can answer at all: a
liveness probe that fails only for a process that should be restarted.

``/readyz`` answers 200 only when the gRPC server answers, the database answers and the
write queue is below its bound; otherwise 503 with ``Retry-After`` and a body naming each
check, for example ``{"status":"unavailable","checks":{"grpc_server":"ok",
"database":"unreachable","write_queue":"ok"}}``. The gateway learns this over its own
channel from the server's standard gRPC health service, which keeps two check names of
trackd's own (``trackd.health.database``, ``trackd.health.write_queue``, kept by the
server's health monitor) besides the overall and per-service statuses. A check that
could not be asked is ``"unknown"``.
"""

from __future__ import annotations

import asyncio

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from trackd.gateway.dialects.base import json_response

HEALTH = web.AppKey("health_stub", health_pb2_grpc.HealthStub)

# The server's check names (trackd/server/health.py), with the word for a failing one.
CHECKS = {
    "database": ("trackd.health.database", "unreachable"),
    "write_queue": ("trackd.health.write_queue", "full"),
}
# A readiness probe wants a quick answer: a server that cannot say within this is not ready.
CHECK_TIMEOUT_SECONDS = 1.0
RETRY_AFTER_SECONDS = 1


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    stub = request.app[HEALTH]
    names = list(CHECKS)
    answers = await asyncio.gather(
        *(stub.Check(health_pb2.HealthCheckRequest(service=CHECKS[name][0]),
                     timeout=CHECK_TIMEOUT_SECONDS) for name in names),
        return_exceptions=True)
    checks = {"grpc_server": "ok"}
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, health_pb2.HealthCheckResponse):
            checks[name] = "ok" if answer.status == health_pb2.HealthCheckResponse.SERVING \
                else CHECKS[name][1]
        else:
            checks[name] = "unknown"
            if isinstance(answer, grpc.aio.AioRpcError) and answer.code() in (
                    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                checks["grpc_server"] = "unreachable"
    if all(value == "ok" for value in checks.values()):
        return json_response({"status": "ok", "checks": checks})
    return json_response({"status": "unavailable", "checks": checks}, 503,
                         {"Retry-After": str(RETRY_AFTER_SECONDS)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
