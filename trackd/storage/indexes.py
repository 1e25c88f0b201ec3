"""Collection names and their indexes, created idempotently at start-up."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

EVENTS = "events"
API_KEYS = "api_keys"
IDEMPOTENCY = "idempotency_keys"
USERS = "users"
ROSTER = "user_roster"
WEBSITES = "websites"
RATE_LIMIT_COUNTS = "rate_limit_counts"
INSTANCES = "trackd_instances"
TRACKING_PLANS = "tracking_plans"
QUARANTINE = "quarantined_events"
PLAN_VIOLATIONS = "plan_violations"
WEBHOOK_ENDPOINTS = "webhook_endpoints"
WEBHOOK_QUEUE = "webhook_queue"
WEBHOOK_DEAD_LETTERS = "webhook_dead_letters"
WEBHOOK_ATTEMPTS = "webhook_attempts"
# The console's decisions (trackd/storage/decisions.py) and per-minute counts.
DECISIONS = "console_decisions"
CONSOLE_COUNTS = "console_counts"
DECISIONS_TTL_SECONDS = 60 * 60
CONSOLE_COUNTS_TTL_SECONDS = 2 * 60 * 60
# Dead letters and attempt records are kept this long (then the TTL index removes them).
WEBHOOK_RECORDS_TTL_SECONDS = 7 * 24 * 60 * 60

IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60
# How long a tracking plan keeps a refused event, and a violation for its report.
QUARANTINE_TTL_SECONDS = 30 * 24 * 60 * 60
PLAN_VIOLATIONS_TTL_SECONDS = 30 * 24 * 60 * 60

INDEXES: dict[str, list[IndexModel]] = {
    EVENTS: [
        # Dedup is a database guarantee: one occurrence per (project, event id).
        IndexModel([("project_id", ASCENDING), ("event_id", ASCENDING)], unique=True,
                   name="project_event_id_unique"),
        # A user's history, newest last.
        IndexModel([("project_id", ASCENDING), ("user_id", ASCENDING), ("timestamp", ASCENDING)],
                   name="project_user_timestamp"),
        # Audience rules: one event's occurrences per user, optionally in a time window.
        IndexModel([("project_id", ASCENDING), ("name", ASCENDING), ("user_id", ASCENDING),
                    ("timestamp", ASCENDING)], name="project_name_user_timestamp"),
        # Linking an anonymous id to a user finds that id's past events.
        IndexModel([("project_id", ASCENDING), ("anonymous_id", ASCENDING)],
                   name="project_anonymous_id"),
        # Webhook replays and Subscribe read a project's events by receive time.
        IndexModel([("project_id", ASCENDING), ("received_at", ASCENDING)],
                   name="project_received_at"),
    ],
    USERS: [
        IndexModel([("project_id", ASCENDING), ("external_id", ASCENDING)], unique=True,
                   name="project_external_id_unique"),
        IndexModel([("project_id", ASCENDING), ("email", ASCENDING)], name="project_email"),
        IndexModel([("project_id", ASCENDING), ("anonymous_ids", ASCENDING)],
                   name="project_anonymous_ids"),
    ],
    ROSTER: [
        IndexModel([("project_id", ASCENDING), ("bucket", ASCENDING)], unique=True,
                   name="project_bucket_unique"),
    ],
    API_KEYS: [
        IndexModel([("key_hash", ASCENDING)], unique=True, name="key_hash_unique"),
        IndexModel([("project_id", ASCENDING)], name="project"),
        # At most one active development key per project, however many instances start
        # together on an empty database (only those keys have the field; revoking unsets it).
        IndexModel([("dev_project", ASCENDING)], unique=True, sparse=True,
                   name="dev_project_unique"),
    ],
    # Websites are found by their _id (a UUID); listing is per project.
    WEBSITES: [
        IndexModel([("project_id", ASCENDING)], name="project"),
    ],
    IDEMPOTENCY: [
        IndexModel([("project_id", ASCENDING), ("scope", ASCENDING), ("key", ASCENDING)],
                   unique=True, name="project_scope_key_unique"),
        IndexModel([("created_at", ASCENDING)], expireAfterSeconds=IDEMPOTENCY_TTL_SECONDS,
                   name="created_at_ttl"),
    ],
    # Shared rate-limit counts (trackd/storage/ratelimits.py), gone once their window has passed.
    RATE_LIMIT_COUNTS: [
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"),
    ],
    # Tracking plans: one document per (project, version); the latest is the current.
    TRACKING_PLANS: [
        IndexModel([("project_id", ASCENDING), ("version", ASCENDING)], unique=True,
                   name="project_version_unique"),
    ],
    # Events a blocking plan refused, one per (project, event id), gone after 30 days.
    QUARANTINE: [
        IndexModel([("project_id", ASCENDING), ("event_id", ASCENDING)], unique=True,
                   name="project_event_id_unique"),
        IndexModel([("project_id", ASCENDING), ("name", ASCENDING)], name="project_name"),
        IndexModel([("quarantined_at", ASCENDING)], expireAfterSeconds=QUARANTINE_TTL_SECONDS,
                   name="quarantined_at_ttl"),
    ],
    # The violations report reads a project's entries since a time.
    PLAN_VIOLATIONS: [
        IndexModel([("project_id", ASCENDING), ("at", ASCENDING)], name="project_at"),
        IndexModel([("at", ASCENDING)], expireAfterSeconds=PLAN_VIOLATIONS_TTL_SECONDS,
                   name="at_ttl"),
    ],
    WEBHOOK_ENDPOINTS: [
        IndexModel([("project_id", ASCENDING), ("created_at", ASCENDING)], name="project"),
        IndexModel([("enabled", ASCENDING), ("lease_until", ASCENDING)], name="lease"),
    ],
    WEBHOOK_QUEUE: [
        IndexModel([("endpoint_id", ASCENDING), ("msg_id", ASCENDING)], unique=True,
                   name="endpoint_msg_unique"),
        IndexModel([("endpoint_id", ASCENDING), ("seq", ASCENDING)], name="endpoint_seq"),
        IndexModel([("endpoint_id", ASCENDING), ("oldest_at", ASCENDING)],
                   name="endpoint_oldest"),  # the lag's oldest queued message
    ],
    WEBHOOK_DEAD_LETTERS: [
        IndexModel([("endpoint_id", ASCENDING), ("msg_id", ASCENDING)], unique=True,
                   name="endpoint_msg_unique"),
        IndexModel([("dead_at", ASCENDING)], expireAfterSeconds=WEBHOOK_RECORDS_TTL_SECONDS,
                   name="dead_at_ttl"),
    ],
    WEBHOOK_ATTEMPTS: [
        IndexModel([("endpoint_id", ASCENDING), ("at", ASCENDING)], name="endpoint_at"),
        IndexModel([("at", ASCENDING)], expireAfterSeconds=WEBHOOK_RECORDS_TTL_SECONDS,
                   name="at_ttl"),
    ],
    # Decisions kept an hour (their TTL), read per project by time.
    DECISIONS: [
        IndexModel([("project_id", ASCENDING), ("at", ASCENDING)], name="project_at"),
        IndexModel([("at", ASCENDING)], expireAfterSeconds=DECISIONS_TTL_SECONDS,
                   name="at_ttl"),
    ],
    # One counter per project, minute, kind and key, kept two hours.
    CONSOLE_COUNTS: [
        IndexModel([("project_id", ASCENDING), ("minute", ASCENDING), ("kind", ASCENDING),
                    ("key", ASCENDING)], unique=True, name="project_minute_kind_key_unique"),
        IndexModel([("minute", ASCENDING)], expireAfterSeconds=CONSOLE_COUNTS_TTL_SECONDS,
                   name="minute_ttl"),
    ],
    # Instance heartbeats; a dead instance's lingers a minute.
    INSTANCES: [
        IndexModel([("seen_at", ASCENDING)], expireAfterSeconds=60, name="seen_at_ttl"),
    ],
}


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    """Create every index; a no-op for the ones that already exist."""
    for collection, models in INDEXES.items():
        await db[collection].create_indexes(models)
