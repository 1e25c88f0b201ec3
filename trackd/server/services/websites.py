"""trackd.v1.WebsiteService: CheckOrigin (the rules themselves are in
:mod:`trackd.server.websites`)."""

from __future__ import annotations

import grpc

from trackd.server.websites import WebsiteGuard
from trackd.v1 import websites_pb2, websites_pb2_grpc


class WebsiteService(websites_pb2_grpc.WebsiteServiceServicer):
    def __init__(self, guard: WebsiteGuard) -> None:
        self._guard = guard

    async def CheckOrigin(
        self, request: websites_pb2.CheckOriginRequest, context: grpc.aio.ServicerContext
    ) -> websites_pb2.CheckOriginResponse:
        _, origin = await self._guard.check_origin(request.website_id, request.origin)
        return websites_pb2.CheckOriginResponse(origin=origin)
