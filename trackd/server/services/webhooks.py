"""trackd.v1.WebhookService: managing a project's webhook endpoints (scope
``webhooks:manage``); the rules are in :mod:`trackd.server.webhooks`, delivery in ``outbound``."""

from __future__ import annotations

import grpc

from trackd.server.auth import SCOPE_WEBHOOKS_MANAGE, Authenticator
from trackd.server.errors import InvalidArgument, storage_call
from trackd.server.messages import timestamp_message
from trackd.server.request_times import timestamp_field
from trackd.server.webhooks import EndpointView, Webhooks
from trackd.storage.webhooks import FAILING, GONE, Endpoint
from trackd.v1 import webhooks_pb2, webhooks_pb2_grpc

_STATES = {"": webhooks_pb2.ENDPOINT_STATE_DISABLED_BY_HAND,
           GONE: webhooks_pb2.ENDPOINT_STATE_DISABLED_GONE,
           FAILING: webhooks_pb2.ENDPOINT_STATE_DISABLED_FAILING}


def endpoint_message(view: EndpointView) -> webhooks_pb2.Endpoint:
    endpoint = view.endpoint
    state = webhooks_pb2.ENDPOINT_STATE_ENABLED if endpoint.enabled else \
        _STATES.get(endpoint.disabled_reason, webhooks_pb2.ENDPOINT_STATE_DISABLED_BY_HAND)
    return webhooks_pb2.Endpoint(
        id=endpoint.id, url=endpoint.url, event_names=endpoint.event_names,
        batch_size=endpoint.batch_size, state=state,
        created_at=timestamp_message(endpoint.created_at),
        lag_seconds=view.lag_seconds, dead_letters=view.dead_letters,
        last_error=endpoint.last_error, queued=view.queued)


class WebhookService(webhooks_pb2_grpc.WebhookServiceServicer):
    def __init__(self, auth: Authenticator, webhooks: Webhooks) -> None:
        self._auth = auth
        self._webhooks = webhooks

    async def _project(self, context: grpc.aio.ServicerContext) -> str:
        return (await self._auth.authenticate(context, SCOPE_WEBHOOKS_MANAGE)).project_id

    async def _message(self, endpoint: Endpoint) -> webhooks_pb2.Endpoint:
        """``endpoint`` as the API shows it, with its delivery state read now."""
        (view,) = await storage_call(self._webhooks.views([endpoint]))
        return endpoint_message(view)

    async def _set_enabled(self, endpoint_id: str, context: grpc.aio.ServicerContext,
                           enabled: bool) -> webhooks_pb2.Endpoint:
        """Enable or disable one of the caller's endpoints; the endpoint as it is now."""
        project = await self._project(context)
        view = await storage_call(self._webhooks.set_enabled(endpoint_id, project, enabled))
        return endpoint_message(view)

    async def CreateEndpoint(
        self, request: webhooks_pb2.CreateEndpointRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.CreateEndpointResponse:
        project = await self._project(context)
        endpoint, secret = await storage_call(self._webhooks.create(
            project, request.url, list(request.event_names), request.batch_size))
        return webhooks_pb2.CreateEndpointResponse(endpoint=await self._message(endpoint),
                                                   secret=secret)

    async def ListEndpoints(
        self, request: webhooks_pb2.ListEndpointsRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListEndpointsResponse:
        project = await self._project(context)
        views = await storage_call(self._webhooks.listing(project))
        return webhooks_pb2.ListEndpointsResponse(endpoints=[endpoint_message(v) for v in views])

    async def GetEndpoint(
        self, request: webhooks_pb2.GetEndpointRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.GetEndpointResponse:
        project = await self._project(context)
        endpoint = await storage_call(self._webhooks.get(request.id, project))
        return webhooks_pb2.GetEndpointResponse(endpoint=await self._message(endpoint))

    async def EnableEndpoint(
        self, request: webhooks_pb2.EnableEndpointRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.EnableEndpointResponse:
        return webhooks_pb2.EnableEndpointResponse(
            endpoint=await self._set_enabled(request.id, context, True))

    async def DisableEndpoint(
        self, request: webhooks_pb2.DisableEndpointRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.DisableEndpointResponse:
        return webhooks_pb2.DisableEndpointResponse(
            endpoint=await self._set_enabled(request.id, context, False))

    async def DeleteEndpoint(
        self, request: webhooks_pb2.DeleteEndpointRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.DeleteEndpointResponse:
        project = await self._project(context)
        await storage_call(self._webhooks.delete(request.id, project))
        return webhooks_pb2.DeleteEndpointResponse()

    async def RotateSecret(
        self, request: webhooks_pb2.RotateSecretRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.RotateSecretResponse:
        project = await self._project(context)
        secret, until = await storage_call(self._webhooks.rotate(request.id, project))
        return webhooks_pb2.RotateSecretResponse(secret=secret,
                                                 previous_expires_at=timestamp_message(until))

    async def Replay(
        self, request: webhooks_pb2.ReplayRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ReplayResponse:
        project = await self._project(context)
        has_since = request.HasField("since")
        if request.failed == has_since:
            raise InvalidArgument.one("since", "give either since or failed (not both)")
        if request.failed:
            queued = await storage_call(self._webhooks.replay_failed(request.id, project))
        else:
            until = timestamp_field(request.until, "until") if request.HasField("until") \
                else None
            queued = await storage_call(self._webhooks.replay_range(
                request.id, project, timestamp_field(request.since, "since"), until))
        return webhooks_pb2.ReplayResponse(queued=queued)

    async def ListAttempts(
        self, request: webhooks_pb2.ListAttemptsRequest, context: grpc.aio.ServicerContext
    ) -> webhooks_pb2.ListAttemptsResponse:
        project = await self._project(context)
        records = await storage_call(self._webhooks.attempts(request.id, project, request.limit))
        return webhooks_pb2.ListAttemptsResponse(attempts=[
            webhooks_pb2.Attempt(time=timestamp_message(r["at"]), webhook_id=r["msg_id"],
                                 status=r["status"], error=r["error"],
                                 latency_seconds=r["latency"], outcome=r["outcome"],
                                 events=r["events"])
            for r in records])
