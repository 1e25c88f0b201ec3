"""TrackingService.Subscribe: a project's stored events in commit order, then live."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from trackd.v1 import tracking_pb2


class Subscriptions:
    """Serves Subscribe streams."""

    async def stream(
        self, request: tracking_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tracking_pb2.SubscribeResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Subscribe is not served here")
        yield tracking_pb2.SubscribeResponse()  # pragma: no cover - abort raises
