"""The deliverer's Prometheus metrics: no endpoint, project or URL label (their number is
not bounded), only the outcome of an attempt, from a fixed set."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# What an attempt came to: delivered (2xx), retry (failed, tried again later),
# dead_letter (failed its last try), disabled (410 Gone, or failing for days), skipped
# (events the database no longer held when the endpoint's turn came: history lost).
OUTCOMES = ("delivered", "retry", "dead_letter", "disabled", "skipped")

ATTEMPTS = Counter("trackd_webhook_attempts", "Webhook delivery attempts, by outcome",
                   ["outcome"])
ATTEMPT_LATENCY = Histogram(
    "trackd_webhook_attempt_duration_seconds", "Webhook attempt latency (answered or not)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0))
EVENTS_DELIVERED = Counter("trackd_webhook_events_delivered",
                           "Events in webhook messages answered 2xx")
DEAD_LETTERS = Counter("trackd_webhook_dead_letters",
                       "Webhook messages dead-lettered after their last retry, or at once "
                       "when their endpoint's retry queue was full")
QUEUE_FULL = Counter(
    "trackd_webhook_queue_full_dead_letters",
    "Webhook messages dead-lettered without a retry because their endpoint's retry queue "
    "held TRACKD_WEBHOOK_MAX_QUEUED messages")
LAG = Gauge("trackd_webhook_lag_seconds",
            "Age of the oldest stored event not yet delivered, the maximum over the "
            "endpoints this process delivers (0: all delivered)", multiprocess_mode="livemax")
ENDPOINTS = Gauge("trackd_webhook_endpoints_delivering",
                  "Endpoints whose lease this process holds", multiprocess_mode="livesum")

for _outcome in OUTCOMES:
    ATTEMPTS.labels(_outcome)
