"""The gateway's Prometheus metrics, and ``GET /metrics``, which exposes every trackd metric.

Metrics register in prometheus-client's default registry, shared with the server's
(:mod:`trackd.server.metrics`; both halves run in one process), which also holds the client's
default process and platform collectors (``process_*``, ``python_*``). With
``PROMETHEUS_MULTIPROC_DIR`` set (prometheus-client's multiprocess mode, for several
worker processes) ``/metrics`` aggregates every process's files instead; the process
collectors do not apply there.

Labels are bounded: dialect names, route templates (never a raw path), a known set of
methods, status codes. No project, key or user label.
"""

from __future__ import annotations

import os

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

# No ``*_created`` series: in the text format Prometheus reads them as extra gauges, one
# per series, doubling the scrape for a start time ``process_start_time_seconds`` gives.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "trackd_http_requests",
    "HTTP requests answered, by dialect, route template, method and status",
    ["dialect", "route", "method", "status"])
HTTP_LATENCY = Histogram(
    "trackd_http_request_duration_seconds",
    "HTTP request latency, by dialect, route template and method",
    ["dialect", "route", "method"], buckets=LATENCY_BUCKETS)
RATE_LIMITED = Counter(
    "trackd_rate_limited_requests",
    "Requests refused by a per-key rate limit (429), by dialect", ["dialect"])


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: the Prometheus text exposition format; needs no key."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
