"""Metrics and request ids over real HTTP: the gateway on port 0, the real gRPC server,
the real database. ``GET /metrics`` is scraped before and after known requests and parsed
with prometheus-client's parser; every counter must move by exactly what was sent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CONTENT_TYPE_LATEST

from tests.helpers import KeyFactory
from tests.scrape import Samples, delta, parse, value
from tests.server.helpers import auth, event, track
from trackd.gateway.dialects import (
    amplitude,
    cueflow,
    databuddy,
    flywheel,
    mixpanel,
    posthog,
    segment,
    vibefollow,
)
from trackd.server import metrics as server_metrics
from trackd.server.app import TrackdServer
from trackd.server.rate_limit_policy import RateLimit
from trackd.v1 import tracking_pb2_grpc

Client = TestClient[Any, Any]
HEX_ID = re.compile(r"[0-9a-f]{32}")
EVENTS_ROUTE = "/api/v1/events"


def headers(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **extra}


async def scrape(http: Client) -> Samples:
    response = await http.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST  # Prometheus text format
    assert CONTENT_TYPE_LATEST.startswith("text/plain; version=")
    return parse(await response.text())


def vibefollow_event(user: str = "u-1", name: str = "user_signed_up") -> bytes:
    return orjson.dumps({"external_user_id": user, "name": name})


def test_every_dialect_is_a_source_the_server_counts() -> None:
    """The dialect the gateway names in ``trackd-dialect`` is one of the server's sources."""
    dialects = {d.name for d in (vibefollow.VIBEFOLLOW, flywheel.FLYWHEEL,
                                 databuddy.DATABUDDY, cueflow.CUEFLOW, segment.SEGMENT,
                                 posthog.POSTHOG, amplitude.AMPLITUDE,
                                 mixpanel.MIXPANEL)}
    assert {*dialects, "grpc"} == server_metrics.SOURCES


async def test_http_and_grpc_counters_move_by_exactly_the_requests_sent(
    http: Client, api_key: str
) -> None:
    before = await scrape(http)
    for i in range(3):
        response = await http.post(EVENTS_ROUTE, data=vibefollow_event(f"u-{i}"),
                                   headers=headers(api_key))
        assert response.status == 202
    invalid = await http.post(EVENTS_ROUTE, data=vibefollow_event(),
                              headers=headers("trk_not-a-key"))
    assert invalid.status == 401
    after = await scrape(http)

    labels = {"dialect": "vibefollow", "route": EVENTS_ROUTE, "method": "POST"}
    assert delta(before, after, "trackd_http_requests_total", **labels, status="202") == 3
    assert delta(before, after, "trackd_http_requests_total", **labels, status="401") == 1
    assert delta(before, after, "trackd_http_request_duration_seconds_count", **labels) == 4
    assert delta(before, after, "trackd_http_request_duration_seconds_bucket", **labels,
                 le="+Inf") == 4
    tracking = {"service": "trackd.v1.TrackingService", "method": "TrackEvent"}
    assert delta(before, after, "trackd_grpc_requests_total", **tracking, code="OK") == 3
    assert delta(before, after, "trackd_grpc_requests_total", **tracking,
                 code="UNAUTHENTICATED") == 1
    assert delta(before, after, "trackd_grpc_request_duration_seconds_count", **tracking) == 4
    assert delta(before, after, "trackd_events_total", outcome="stored",
                 source="vibefollow") == 3
    assert delta(before, after, "trackd_events_total", outcome="rejected",
                 source="vibefollow") == 1
    assert delta(before, after, "trackd_events_total", outcome="duplicate",
                 source="vibefollow") == 0
    assert delta(before, after, "trackd_write_flush_events_sum") == 3
    assert delta(before, after, "trackd_write_flushes_failed_total", reason="unavailable") == 0
    # Every queued event was written: the queue is back where it was.
    assert value(after, "trackd_write_queue_events") == value(before, "trackd_write_queue_events")
    assert value(after, "trackd_database_up") == 1
    # The scrape itself is counted under the route of no dialect.
    assert delta(before, after, "trackd_http_requests_total", dialect="none",
                 route="/metrics", method="GET", status="200") == 1
    # The client's default collectors are there too.
    assert value(after, "process_cpu_seconds_total") > 0


async def test_events_by_source_and_outcome_and_idempotent_replays(
    http: Client, api_key: str, tracking: tracking_pb2_grpc.TrackingServiceStub
) -> None:
    before = await scrape(http)
    # Databuddy: two events with one eventId: one stored, one duplicate.
    response = await http.post("/track", data=orjson.dumps(
        [{"name": "a", "eventId": "e-1"}, {"name": "b", "eventId": "e-1"}]),
        headers=headers(api_key))
    assert (response.status, await response.json())[1]["count"] == 1
    # VibeFollow with an Idempotency-Key, sent twice: stored once, replayed once.
    for _ in range(2):
        response = await http.post(EVENTS_ROUTE, data=vibefollow_event(),
                                   headers=headers(api_key, **{"Idempotency-Key": "k-1"}))
        assert response.status == 202
    # gRPC directly: one stored, one refused for its key.
    await tracking.TrackEvent(track(event()), metadata=auth(api_key))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await tracking.TrackEvent(track(event()), metadata=auth("trk_nope"))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    after = await scrape(http)

    expected = {
        ("stored", "databuddy"): 1, ("duplicate", "databuddy"): 1,
        ("stored", "vibefollow"): 1, ("stored", "grpc"): 1, ("rejected", "grpc"): 1,
    }
    for source in server_metrics.SOURCES:
        for outcome in ("stored", "duplicate", "rejected", "failed"):
            assert delta(before, after, "trackd_events_total", outcome=outcome,
                         source=source) == expected.get((outcome, source), 0), (outcome, source)
    assert delta(before, after, "trackd_idempotent_replays_total", method="TrackEvent") == 1


async def test_route_label_is_the_template_never_the_raw_path(
    http: Client, make_key: KeyFactory
) -> None:
    key = await make_key(scopes=("users:read",))
    before = await scrape(http)
    for external_id in ("alice-7431", "bob-9876"):
        response = await http.get(f"/api/v1/contacts/{external_id}", headers=headers(key))
        assert response.status == 404
    unknown = await http.get("/no/such/path-5512")
    assert unknown.status == 404
    response = await http.get("/metrics")
    text = await response.text()
    after = parse(text)

    assert delta(before, after, "trackd_http_requests_total", dialect="cueflow",
                 route="/api/v1/contacts/{external_id}", method="GET", status="404") == 2
    assert delta(before, after, "trackd_http_requests_total", dialect="none",
                 route="unmatched", method="GET", status="404") == 1
    for raw in ("alice-7431", "bob-9876", "path-5512"):
        assert raw not in text


@pytest.fixture
def rate_limits() -> dict[str, RateLimit]:
    """``limited_http``'s server limits Cueflow to 1 request per minute per key."""
    return {"cueflow": RateLimit(1, 60)}


async def test_rate_limited_requests_are_counted_by_dialect(
    limited_http: Client, make_key: KeyFactory
) -> None:
    key = await make_key(scopes=("users:read",))
    before = await scrape(limited_http)
    statuses = [(await limited_http.get("/api/v1/contacts/c-1", headers=headers(key))).status
                for _ in range(3)]
    after = await scrape(limited_http)
    assert statuses == [404, 429, 429]
    assert delta(before, after, "trackd_rate_limited_requests_total", dialect="cueflow") == 2
    assert delta(before, after, "trackd_http_requests_total", dialect="cueflow",
                 route="/api/v1/contacts/{external_id}", method="GET", status="429") == 2


async def test_audience_evaluation_latency_by_path(
    http: Client, make_key: KeyFactory, server: TrackdServer
) -> None:
    key = await make_key(scopes=("users:read",))
    audience = orjson.dumps({"groups": [{"rules": [{"event": "e", "op": "has_done"}]}]})
    before = await scrape(http)
    assert server.audience_index is not None
    assert await server.audience_index.prepare("acme")
    response = await http.post("/api/v1/audiences/evaluate", data=audience,
                               headers=headers(key))
    assert response.status == 200
    after = await scrape(http)
    assert delta(before, after, "trackd_audience_evaluation_duration_seconds_count",
                 method="EvaluateAudience", path="index") == 1
    assert delta(before, after, "trackd_audience_evaluation_duration_seconds_count",
                 method="EvaluateAudience", path="events") == 0
    assert delta(before, after, "trackd_audience_index_projects") == 1
    assert delta(before, after, "trackd_audience_index_events_total", via="load") == 0


async def test_request_id_is_echoed_or_made(http: Client, api_key: str) -> None:
    response = await http.post(EVENTS_ROUTE, data=vibefollow_event(),
                               headers=headers(api_key, **{"X-Request-Id": "req-42.a:b"}))
    assert response.status == 202
    assert response.headers["X-Request-Id"] == "req-42.a:b"

    made = await http.post(EVENTS_ROUTE, data=vibefollow_event(), headers=headers(api_key))
    assert HEX_ID.fullmatch(made.headers["X-Request-Id"])

    for hostile in ("x" * 129, "two words", 'quote"d', "new\\nline", "ü-nicode", ""):
        response = await http.post(EVENTS_ROUTE, data=vibefollow_event(),
                                   headers=headers(api_key, **{"X-Request-Id": hostile}))
        assert response.status == 202
        assert HEX_ID.fullmatch(response.headers["X-Request-Id"]), hostile

    # On answers no dialect gave too: aiohttp's own 404, a 401, /metrics.
    for path in ("/nowhere", "/metrics"):
        response = await http.get(path, headers={"X-Request-Id": "rid-1"})
        assert response.headers["X-Request-Id"] == "rid-1", path
    unauthorized = await http.post(EVENTS_ROUTE, data=vibefollow_event(),
                                   headers={"X-Request-Id": "rid-2"})
    assert unauthorized.status == 401
    assert unauthorized.headers["X-Request-Id"] == "rid-2"


MULTIPROCESS_WORKER = """
import asyncio, sys
from aiohttp.test_utils import make_mocked_request
from trackd.gateway import metrics as gateway_metrics
from trackd.server import metrics as server_metrics
server_metrics.count_events("flywheel", 2, 1)
gateway_metrics.HTTP_REQUESTS.labels("flywheel", "/v1/events", "POST", "200").inc()
if sys.argv[1] == "scrape":
    response = asyncio.run(gateway_metrics.metrics(make_mocked_request("GET", "/metrics")))
    sys.stdout.write(response.body.decode())
"""


def test_multiprocess_mode_adds_up_every_worker(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, /metrics of one worker counts every worker's."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for argument in ("count", "count"):
        subprocess.run([sys.executable, "-c", MULTIPROCESS_WORKER, argument], env=env,
                       check=True, timeout=60)
    scraped = subprocess.run([sys.executable, "-c", MULTIPROCESS_WORKER, "scrape"], env=env,
                             check=True, timeout=60, capture_output=True, text=True).stdout
    samples = parse(scraped)
    assert value(samples, "trackd_events_total", outcome="stored", source="flywheel") == 6
    assert value(samples, "trackd_events_total", outcome="duplicate", source="flywheel") == 3
    assert value(samples, "trackd_http_requests_total", dialect="flywheel", route="/v1/events",
                 method="POST", status="200") == 3
    assert value(samples, "trackd_database_up") == 1
