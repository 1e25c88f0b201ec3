"""Every setting trackd has, read in one place: command-line flags over TRACKD_* variables.

A setting that configures a component takes its default from that component's own
configuration dataclass (:class:`trackd.server.app.ServerConfig`,
:class:`trackd.server.pipeline.PipelineConfig`, :class:`trackd.gateway.settings.GatewaySettings`,
:class:`trackd.outbound.config.DeliveryConfig`), so each default is written once; the rest are
written here. tests/cli/test_settings_table.py holds the manual's settings table
(docs/operating/settings.md) to these.

``MONGODB_URI`` (also accepted as ``TRACKD_MONGODB_URI``) selects a MongoDB server; without
it trackd runs the embedded database in ``data_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trackd.cli.logs import LogFormat, parse_level
from trackd.gateway.settings import GatewaySettings
from trackd.outbound.config import DEFAULT_RETRY_SCHEDULE, DeliveryConfig, parse_schedule
from trackd.server.app import ServerConfig
from trackd.server.pipeline import PipelineConfig
from trackd.server.rate_limit_policy import RateLimit, limits_from


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRACKD_", extra="ignore",
                                      populate_by_name=True)

    mongodb_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_URI", "TRACKD_MONGODB_URI"),
        description="MongoDB connection string; unset = run the embedded database")
    mongodb_timeout_seconds: float = Field(
        default=5.0, gt=0, description="how long start-up waits for MongoDB to answer "
        "(server selection) before giving up")
    database: str = Field(default="trackd", description="database name")
    data_dir: Path = Field(default=Path(".trackd"),
                           description="where the embedded database keeps its files")
    host: str = Field(default=ServerConfig.host, description="address both servers listen on")
    grpc_port: int = Field(default=ServerConfig.port, ge=0, le=65535, description="gRPC port")
    http_port: int = Field(default=8080, ge=0, le=65535, description="REST gateway port")
    workers: int = Field(
        default=1, ge=1, description="processes serving, each a gateway and a gRPC server "
        "sharing both ports, under one supervisor; auto: one per CPU core trackd may use")
    max_body_bytes: int = Field(default=GatewaySettings.max_body_bytes, gt=0,
                                description="largest request body, after decompression")
    rpc_timeout_seconds: float = Field(default=GatewaySettings.rpc_timeout_seconds, gt=0,
                                       description="gateway's deadline for each RPC")
    batch_max_events: int = Field(default=PipelineConfig.max_batch_events, gt=0,
                                  description="most events in one database insert")
    batch_linger_ms: float = Field(
        default=PipelineConfig.linger_seconds * 1000, ge=0,
        description="longest an event waits behind a running flush")
    batch_parallel_events: int = Field(
        default=PipelineConfig.parallel_batch_events, gt=0,
        description="queued events that start a parallel flush")
    max_in_flight_flushes: int = Field(default=PipelineConfig.max_in_flight, gt=0,
                                       description="database inserts running at once")
    max_queued_events: int = Field(default=PipelineConfig.max_queued_events, gt=0,
                                   description="events waiting or being written; beyond: 503")
    auth_cache_seconds: float = Field(default=ServerConfig.auth_cache_seconds, ge=0,
                                      description="how long a key lookup is cached")
    idempotency_lease_seconds: float = Field(
        default=ServerConfig.idempotency_lease_seconds, ge=1,
        description="how long a running request holds its idempotency "
        "key without renewing it (a crashed instance's keys are free this long after)")
    audience_index: bool = Field(
        default=ServerConfig.audience_index,
        description="evaluate audiences from an in-memory index kept by the "
        "database's change stream (false: read the events each time)")
    audience_index_max_bytes: int = Field(
        default=ServerConfig.audience_index_max_bytes, gt=0,
        description="the audience index's memory budget "
        "(estimated); past it, the least recently evaluated projects are dropped")
    health_ping_timeout_seconds: float = Field(
        default=ServerConfig.health_timeout_seconds, gt=0,
        description="how long the health monitor's database ping may take before it "
        "counts as slow")
    health_slow_pings: int = Field(
        default=ServerConfig.health_slow_pings, ge=1,
        description="slow pings in a row before the database is declared down (a "
        "refused or lost connection is at once)")
    shutdown_grace_seconds: float = Field(default=30.0, ge=0,
                                          description="time in-flight requests get on stop")
    log_level: str = Field(
        default="INFO", description="trackd's loggers: DEBUG, INFO, WARNING or ERROR; other "
        "libraries stay at WARNING unless named, as in DEBUG,pymongo=DEBUG")
    log_format: LogFormat = Field(
        default="auto", description="auto (text on a terminal, else JSON lines), json or text")
    rate_limit_vibefollow: str | None = Field(
        default=None, description="VibeFollow requests per key, as N/SECONDS or off")
    rate_limit_flywheel: str | None = Field(
        default=None, description="Flywheel requests per key, as N/SECONDS or off")
    rate_limit_databuddy: str | None = Field(
        default=None, description="Databuddy requests per key (vendor default 600/60)")
    rate_limit_cueflow: str | None = Field(
        default=None, description="Cueflow requests per key (vendor default 100/60)")
    rate_limit_segment: str | None = Field(
        default=None, description="Segment/RudderStack requests per write key, as "
        "N/SECONDS or off (default off: Segment documents no hard limit)")
    rate_limit_posthog: str | None = Field(
        default=None, description="PostHog requests per project API key, as N/SECONDS or "
        "off (default off: PostHog does not limit capture)")
    rate_limit_amplitude: str | None = Field(
        default=None, description="Amplitude requests per API key, as N/SECONDS or off "
        "(default off: Amplitude limits devices, not keys)")
    rate_limit_mixpanel: str | None = Field(
        default=None, description="Mixpanel requests per project token, as N/SECONDS or "
        "off (default off: Mixpanel limits projects by volume)")
    rate_limit_grpc: str | None = Field(
        default=None, description="direct gRPC callers' requests per key (default off)")

    webhook_concurrency: int = Field(
        default=DeliveryConfig.concurrency, gt=0,
        description="users delivered at once per webhook endpoint (one user's events go "
        "one at a time, in order)")
    webhook_timeout_seconds: float = Field(
        default=DeliveryConfig.timeout_seconds, gt=0,
        description="how long a webhook receiver has to answer 2xx")
    webhook_retry_schedule: str = Field(
        default=DEFAULT_RETRY_SCHEDULE, description="waits between a webhook message's "
        "attempts (n steps: 1 + n attempts, with jitter), then dead letter")
    webhook_allow_private: bool = Field(
        default=DeliveryConfig.allow_private, description="webhook URLs may reach loopback, "
        "private and link-local addresses (local development, tests)")
    webhook_max_queued: int = Field(
        default=DeliveryConfig.max_queued, gt=0,
        description="messages one webhook endpoint's retry queue holds at most; past it a "
        "message is dead-lettered at once")

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _workers_auto(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return available_cores()
        return value

    @field_validator("log_level")
    @classmethod
    def _valid_log_level(cls, value: str) -> str:
        parse_level(value)
        return value

    @field_validator("rate_limit_vibefollow", "rate_limit_flywheel", "rate_limit_databuddy",
                     "rate_limit_cueflow", "rate_limit_segment", "rate_limit_posthog",
                     "rate_limit_amplitude", "rate_limit_mixpanel", "rate_limit_grpc")
    @classmethod
    def _valid_rate_limit(cls, value: str | None) -> str | None:
        if value is not None:
            RateLimit.parse(value)
        return value

    def server_config(self, port: int | None = None) -> ServerConfig:
        return ServerConfig(
            host=self.host,
            port=self.grpc_port if port is None else port,
            auth_cache_seconds=self.auth_cache_seconds,
            audience_index=self.audience_index,
            audience_index_max_bytes=self.audience_index_max_bytes,
            idempotency_lease_seconds=self.idempotency_lease_seconds,
            webhook_allow_private=self.webhook_allow_private,
            health_timeout_seconds=self.health_ping_timeout_seconds,
            health_slow_pings=self.health_slow_pings,
            rate_limits=limits_from([
                ("vibefollow", self.rate_limit_vibefollow),
                ("flywheel", self.rate_limit_flywheel),
                ("databuddy", self.rate_limit_databuddy),
                ("cueflow", self.rate_limit_cueflow),
                ("segment", self.rate_limit_segment),
                ("posthog", self.rate_limit_posthog),
                ("amplitude", self.rate_limit_amplitude),
                ("mixpanel", self.rate_limit_mixpanel),
                ("grpc", self.rate_limit_grpc),
            ]),
            pipeline=PipelineConfig(
                max_batch_events=self.batch_max_events,
                max_in_flight=self.max_in_flight_flushes,
                linger_seconds=self.batch_linger_ms / 1000,
                parallel_batch_events=self.batch_parallel_events,
                max_queued_events=self.max_queued_events,
            ),
        )

    def delivery_config(self) -> DeliveryConfig:
        return DeliveryConfig(
            concurrency=self.webhook_concurrency, timeout_seconds=self.webhook_timeout_seconds,
            retry_schedule=parse_schedule(self.webhook_retry_schedule),
            allow_private=self.webhook_allow_private, max_queued=self.webhook_max_queued)

    def gateway_settings(self, grpc_port: int) -> GatewaySettings:
        local = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return GatewaySettings(
            grpc_target=f"{local}:{grpc_port}",
            max_body_bytes=self.max_body_bytes,
            rpc_timeout_seconds=self.rpc_timeout_seconds,
        )


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity), for ``workers = auto``."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform
        return os.cpu_count() or 1


def load(overrides: dict[str, Any]) -> Settings:
    """Settings from the environment, with the given (flag) values taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
