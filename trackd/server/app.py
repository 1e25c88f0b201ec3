"""The server factory: wires auth, idempotency and the write pipeline into a grpc.aio server."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from trackd.outbound.config import DeliveryConfig
from trackd.server.audiences import AudienceIndex
from trackd.server.audiences.index import DEFAULT_MAX_BYTES as AUDIENCE_INDEX_MAX_BYTES
from trackd.server.auth import Authenticator
from trackd.server.decisions import DecisionRecorder
from trackd.server.errors import ErrorInterceptor
from trackd.server.health import AvailabilityGate, HealthMonitor
from trackd.server.idempotency import IdempotencyGuard
from trackd.server.observability import ObservabilityInterceptor
from trackd.server.pipeline import PipelineConfig, WritePipeline
from trackd.server.plans.book import PlanBook
from trackd.server.plans.verdict import PlanJudge
from trackd.server.rate_limit_policy import RateLimit
from trackd.server.ratelimit import RateLimiter
from trackd.server.services.audiences import AudienceService
from trackd.server.services.decisions import DecisionService
from trackd.server.services.plans import TrackingPlanService
from trackd.server.services.subscribe import Subscriptions
from trackd.server.services.tracking import TrackingService
from trackd.server.services.users import UserService
from trackd.server.services.webhooks import WebhookService
from trackd.server.services.websites import WebsiteService
from trackd.server.webhooks import Webhooks
from trackd.server.websites import WebsiteGuard
from trackd.storage import Store
from trackd.storage.changes import ChangeFeed
from trackd.storage.ratelimits import RateCounterRepository
from trackd.v1 import (
    audiences_pb2,
    audiences_pb2_grpc,
    decisions_pb2,
    decisions_pb2_grpc,
    plans_pb2,
    plans_pb2_grpc,
    tracking_pb2,
    tracking_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
    webhooks_pb2,
    webhooks_pb2_grpc,
    websites_pb2,
    websites_pb2_grpc,
)
from trackd.wire.endpoints import DEFAULT_GRPC_PORT
from trackd.wire.limits import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


SERVICE_NAMES = (
    tracking_pb2.DESCRIPTOR.services_by_name["TrackingService"].full_name,
    users_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
    websites_pb2.DESCRIPTOR.services_by_name["WebsiteService"].full_name,
    audiences_pb2.DESCRIPTOR.services_by_name["AudienceService"].full_name,
    plans_pb2.DESCRIPTOR.services_by_name["TrackingPlanService"].full_name,
    webhooks_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name,
    decisions_pb2.DESCRIPTOR.services_by_name["DecisionService"].full_name,
)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_GRPC_PORT
    auth_cache_seconds: float = 5.0
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    # Audiences from an in-memory index kept by the change feed (trackd/server/audiences/index.py);
    # off, every evaluation reads the events.
    audience_index: bool = True
    # How often the health monitor pings the database, and how long a ping may take.
    health_interval_seconds: float = 1.0
    health_timeout_seconds: float = 1.0
    # Consecutive pings past health_timeout_seconds before the database is declared down
    # (a failed ping is evidence at once; a slow one is a busy database).
    health_slow_pings: int = 10
    # One of several worker processes sharing ``port`` (SO_REUSEPORT, trackd/cli/ports.py).
    # Off for a single process, so a second trackd on the same port fails to bind.
    reuse_port: bool = False
    # Also listen here (``unix:/path``): this process's own gateway calls this address,
    # so its calls never land on another worker's server behind the shared port.
    local_address: str | None = None

    # The index's memory budget (estimated bytes); past it, least recently evaluated
    # projects are dropped.
    audience_index_max_bytes: int = AUDIENCE_INDEX_MAX_BYTES
    # Requests per key by scope (a dialect's name, or "grpc"), over
    # trackd/server/rate_limit_policy.py's DEFAULT_LIMITS; None switches a scope's limit off.
    rate_limits: Mapping[str, RateLimit | None] = field(default_factory=dict)
    # How long an idempotency key's running request holds it unrenewed (a crashed
    # instance's keys are taken over this long after its last renewal).
    idempotency_lease_seconds: float = 5.0
    # Webhook URLs may reach private, loopback and link-local addresses (local
    # development, tests): checked at create here, at every connection by outbound.
    webhook_allow_private: bool = DeliveryConfig.allow_private


class PortInUse(Exception):
    """A listening port could not be bound (taken, or not allowed)."""

    def __init__(self, what: str, host: str, port: int) -> None:
        super().__init__(f"{what} port {port} on {host} is in use or not available")
        self.what, self.host, self.port = what, host, port


class TrackdServer:
    """A started gRPC server and the pipeline behind it."""

    def __init__(self, server: grpc.aio.Server, port: int, pipeline: WritePipeline,
                 health_servicer: health.aio.HealthServicer,
                 audience_index: AudienceIndex | None, monitor: HealthMonitor,
                 limiter: RateLimiter, auth: Authenticator, plans: PlanBook) -> None:
        self.server = server
        self.port = port
        self.pipeline = pipeline
        self.audience_index = audience_index
        self.monitor = monitor
        self.limiter = limiter
        self.auth = auth
        self.plans = plans
        self._health = health_servicer
        # Set by create_server: the console's decision recorder.
        self.decisions: DecisionRecorder | None = None

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting calls, let in-flight calls finish, then drain the pipeline."""
        await self.monitor.close()
        await self._health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.pipeline.close()
        if self.decisions is not None:
            await self.decisions.close()
        await self.limiter.close()
        await self.auth.close()
        await self.plans.close()
        if self.audience_index is not None:
            await self.audience_index.close()

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def create_server(store: Store, config: ServerConfig | None = None) -> TrackdServer:
    """Build and start the server; ``config.port`` 0 picks a free port (see ``.port``)."""
    config = config or ServerConfig()
    pipeline = WritePipeline(store.events, config.pipeline)
    pipeline.start()
    # The console's decisions, recorded off the acknowledgement path (trackd/server/decisions.py).
    decisions = DecisionRecorder(store.decisions)
    decisions.start()
    health_servicer = health.aio.HealthServicer()
    monitor = HealthMonitor(
        health_servicer, store.ping, pipeline, SERVICE_NAMES,
        tracking_service=SERVICE_NAMES[0], interval=config.health_interval_seconds,
        timeout=config.health_timeout_seconds, slow_pings=config.health_slow_pings)
    server = grpc.aio.server(
        # Outermost first: observability sees the status ErrorInterceptor gives, and the
        # gate's fast UNAVAILABLE while the database is down.
        interceptors=[ObservabilityInterceptor(), ErrorInterceptor(decisions.on_refused),
                      AvailabilityGate(monitor)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 1 if config.reuse_port else 0),
        ],
    )
    limiter = RateLimiter(config.rate_limits, RateCounterRepository(store.db))
    limiter.start()
    auth = Authenticator(store.keys, config.auth_cache_seconds, limiter)
    await auth.follow()
    idempotency = IdempotencyGuard(
        store.idempotency, lease=timedelta(seconds=config.idempotency_lease_seconds))
    websites = WebsiteGuard(auth, store.websites, config.auth_cache_seconds)
    # Plans are cached as keys are, and dropped fleet-wide by their change stream too.
    plans = PlanBook(store.plans, config.auth_cache_seconds)
    await plans.follow()
    judge = PlanJudge(plans, store.quarantine, store.plan_violations)
    tracking_pb2_grpc.add_TrackingServiceServicer_to_server(
        TrackingService(auth, pipeline, idempotency, store.users, websites, judge,
                        Subscriptions(auth, store.db), decisions), server)
    plans_pb2_grpc.add_TrackingPlanServiceServicer_to_server(
        TrackingPlanService(auth, store, plans), server)
    decisions_pb2_grpc.add_DecisionServiceServicer_to_server(
        DecisionService(auth, store.decisions), server)
    webhooks_pb2_grpc.add_WebhookServiceServicer_to_server(
        WebhookService(auth, Webhooks(store, config.webhook_allow_private)), server)
    websites_pb2_grpc.add_WebsiteServiceServicer_to_server(WebsiteService(websites), server)
    users_pb2_grpc.add_UserServiceServicer_to_server(
        UserService(auth, store.users, store.history, idempotency), server)
    audience_index = AudienceIndex(ChangeFeed(store.db), store.audiences,
                                   config.audience_index_max_bytes) \
        if config.audience_index else None
    audiences_pb2_grpc.add_AudienceServiceServicer_to_server(
        AudienceService(auth, store.audiences, audience_index), server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await monitor.start()
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        port = server.add_insecure_port(f"{config.host}:{config.port}")
        if config.local_address is not None:
            server.add_insecure_port(config.local_address)
    except RuntimeError as exc:  # grpc says only "Failed to bind to address ..."
        await monitor.close()
        await pipeline.close()
        await plans.close()
        await decisions.close()
        if audience_index is not None:
            await audience_index.close()
        raise PortInUse("gRPC", config.host, config.port) from exc
    await server.start()
    log.info("gRPC server listening on %s:%d", config.host, port)
    trackd = TrackdServer(server, port, pipeline, health_servicer, audience_index, monitor,
                          limiter, auth, plans)
    trackd.decisions = decisions
    return trackd
