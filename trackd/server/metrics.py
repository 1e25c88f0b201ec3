"""The server's Prometheus metrics (prometheus-client), every name prefixed ``trackd_``.

They register in prometheus-client's default registry, which the gateway's ``GET /metrics``
exposes (both halves run in one process). Labels never carry a project, key, user or
anything else a client chooses freely: only names from fixed sets (service, method, code,
source, outcome), so the number of series stays bounded.

Gauges name a ``multiprocess_mode`` so that prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, see :mod:`trackd.gateway.metrics`) works unchanged once trackd
runs several worker processes.
"""

from __future__ import annotations

import grpc
from prometheus_client import Counter, Gauge, Histogram

# Where an event came in: the REST dialect the gateway names in ``trackd-dialect`` call
# metadata, else "grpc" (a direct gRPC client).
SOURCES = frozenset({"vibefollow", "flywheel", "databuddy", "cueflow", "segment", "posthog",
                     "amplitude", "mixpanel", "grpc"})
GRPC_SOURCE = "grpc"

# Latency buckets (seconds): an RPC answers in about a millisecond when idle; a durable
# write waits for the journal; the gateway's RPC deadline is 30 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0)
# Audience evaluations reading the events take seconds at 100k users (bench/README.md).
EVALUATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                      2.5, 5.0, 10.0, 30.0, 60.0)
FLUSH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

GRPC_REQUESTS = Counter(
    "trackd_grpc_requests", "gRPC calls answered, by service, method and status code",
    ["service", "method", "code"])
GRPC_LATENCY = Histogram(
    "trackd_grpc_request_duration_seconds", "gRPC call latency, by service and method",
    ["service", "method"], buckets=LATENCY_BUCKETS)

EVENTS = Counter(
    "trackd_events",
    "Events in TrackEvent/BatchTrack calls by outcome (stored: newly stored; duplicate: "
    "an event id already stored; rejected: the call failed for the client's input or "
    "credentials; failed: the call failed on trackd's side, e.g. database unavailable) "
    "and source (the REST dialect, or grpc)",
    ["outcome", "source"])
PLAN_VIOLATIONS = Counter(
    "trackd_plan_violations",
    "Tracking plan violations found in events, by kind (unplanned_event, missing_required, "
    "wrong_type, unexpected_property, invalid_value) and outcome (stored: the event was "
    "stored with it; blocked: the event was refused and quarantined). No project label: "
    "`trackd plans violations` reports per project",
    ["kind", "outcome"])
IDEMPOTENT_REPLAYS = Counter(
    "trackd_idempotent_replays",
    "Requests answered by replaying the first response to their idempotency key, by method",
    ["method"])

WRITE_QUEUE = Gauge(
    "trackd_write_queue_events",
    "Events queued or being written by the write pipeline (bounded by "
    "TRACKD_MAX_QUEUED_EVENTS)", multiprocess_mode="livesum")
FLUSH_SIZE = Histogram(
    "trackd_write_flush_events", "Events per database insert of the write pipeline",
    buckets=FLUSH_SIZE_BUCKETS)
FLUSH_LATENCY = Histogram(
    "trackd_write_flush_duration_seconds",
    "Duration of the write pipeline's durable inserts (successful or not)",
    buckets=LATENCY_BUCKETS)
FAILED_FLUSHES = Counter(
    "trackd_write_flushes_failed",
    "Write pipeline inserts that failed, by reason (unavailable: the database could not "
    "be reached; error: anything else)", ["reason"])

DATABASE_UP = Gauge(
    "trackd_database_up",
    "1 while the database answers, 0 after an operation found it unreachable",
    multiprocess_mode="livemin")
EMBEDDED_RESTARTS = Counter(
    "trackd_embedded_database_restarts",
    "Times the embedded database was started again after it stopped")

AUDIENCE_PROJECTS = Gauge(
    "trackd_audience_index_projects", "Projects loaded in the audience index",
    multiprocess_mode="livesum")
AUDIENCE_BYTES = Gauge(
    "trackd_audience_index_bytes",
    "The audience index's estimated memory as of its last load or evaluation (its budget: "
    "TRACKD_AUDIENCE_INDEX_MAX_BYTES)", multiprocess_mode="livesum")
AUDIENCE_EVENTS = Counter(
    "trackd_audience_index_events",
    "Events counted into the audience index, by how (load: a project's load; feed: the "
    "change feed)", ["via"])
AUDIENCE_EVALUATION = Histogram(
    "trackd_audience_evaluation_duration_seconds",
    "Audience evaluation latency, by method and path (index: the in-memory audience index; "
    "events: reading the events)", ["method", "path"], buckets=EVALUATION_BUCKETS)

# Codes that mean the client's request was refused; the rest are trackd's own failures.
_CLIENT_CODES = frozenset({
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.OUT_OF_RANGE,
})

# Made up front, so a dashboard sees zeros, not gaps (and the hot path skips labels()).
_EVENT_SERIES = {(outcome, source): EVENTS.labels(outcome, source)
                 for source in SOURCES for outcome in ("stored", "duplicate", "rejected", "failed")}
_PLAN_SERIES = {(kind, outcome): PLAN_VIOLATIONS.labels(kind, outcome)
                for kind in ("unplanned_event", "missing_required", "wrong_type",
                             "unexpected_property", "invalid_value")
                for outcome in ("stored", "blocked")}
for _reason in ("unavailable", "error"):
    FAILED_FLUSHES.labels(_reason)
for _via in ("load", "feed"):
    AUDIENCE_EVENTS.labels(_via)
DATABASE_UP.set(1)  # the server starts only once the database answered (trackd/cli/database.py)


def set_database_up(up: bool) -> None:
    """Record whether the database answered the last operation that reached it."""
    DATABASE_UP.set(1 if up else 0)


def count_embedded_restart() -> None:
    """Count one restart of the embedded database (its supervisor calls this)."""
    EMBEDDED_RESTARTS.inc()


def count_plan_violations(kind: str, outcome: str, count: int = 1) -> None:
    """Count tracking plan violations of ``kind`` (stored with their event, or blocked)."""
    _PLAN_SERIES[kind, outcome].inc(count)


def count_events(source: str, stored: int, duplicate: int) -> None:
    if stored:
        _EVENT_SERIES["stored", source].inc(stored)
    if duplicate:
        _EVENT_SERIES["duplicate", source].inc(duplicate)


# Call series by their labels (a bounded set: the server's methods and grpc's codes), so a
# call's counting skips labels(), which takes a lock and checks its arguments.
_CALL_SERIES: dict[tuple[str, str, grpc.StatusCode], Counter] = {}
_LATENCY_SERIES: dict[tuple[str, str], Histogram] = {}


def count_call(service: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
    """Count one answered call of ``service``/``method`` and its latency."""
    counter = _CALL_SERIES.get((service, method, code))
    if counter is None:
        counter = _CALL_SERIES[service, method, code] = GRPC_REQUESTS.labels(
            service, method, code.name)
    latency = _LATENCY_SERIES.get((service, method))
    if latency is None:
        latency = _LATENCY_SERIES[service, method] = GRPC_LATENCY.labels(service, method)
    counter.inc()
    latency.observe(seconds)


def count_unstored_events(source: str, code: grpc.StatusCode, events: int) -> None:
    """Events of a write call that ended with ``code`` (not OK): none was stored."""
    outcome = "rejected" if code in _CLIENT_CODES else "failed"
    _EVENT_SERIES[outcome, source].inc(events)

CONSOLE_DECISIONS = Counter(
    "trackd_console_decisions",
    "Decisions for the console (trackd/server/decisions.py) by outcome: recorded (written to the "
    "database), not_recorded (counted only: the recorder's queue was full, so sampled), "
    "lost (the database refused the batch)", ["outcome"])
