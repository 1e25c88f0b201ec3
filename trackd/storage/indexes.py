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


def _ascending(*fields: str, name: str, unique: bool = False,
               sparse: bool = False) -> IndexModel:
    """An index on ``fields``, each ascending. The names are the ones existing databases
    hold: an index renamed with the same keys would fail to be created."""
    options: dict[str, Any] = {"unique": True} if unique else {}
    if sparse:
        options["sparse"] = True
    return IndexModel([(field, ASCENDING) for field in fields], **options, name=name)


def _expiring(field: str, seconds: int) -> IndexModel:
    """A TTL index: the database removes a document ``seconds`` after the time in its
    ``field``. Named ``<field>_ttl``."""
    return IndexModel([(field, ASCENDING)], expireAfterSeconds=seconds, name=f"{field}_ttl")


INDEXES: dict[str, list[IndexModel]] = {
    EVENTS: [
        # Dedup is a database guarantee: one occurrence per (project, event id).
        _ascending("project_id", "event_id", unique=True, name="project_event_id_unique"),
        # A user's history, newest last.
        _ascending("project_id", "user_id", "timestamp", name="project_user_timestamp"),
        # Audience rules: one event's occurrences per user, optionally in a time window.
        _ascending("project_id", "name", "user_id", "timestamp",
                   name="project_name_user_timestamp"),
        # Linking an anonymous id to a user finds that id's past events.
        _ascending("project_id", "anonymous_id", name="project_anonymous_id"),
        # Webhook replays and Subscribe read a project's events by receive time.
        _ascending("project_id", "received_at", name="project_received_at"),
    ],
    USERS: [
        _ascending("project_id", "external_id", unique=True,
                   name="project_external_id_unique"),
        _ascending("project_id", "email", name="project_email"),
        _ascending("project_id", "anonymous_ids", name="project_anonymous_ids"),
    ],
    ROSTER: [
        _ascending("project_id", "bucket", unique=True, name="project_bucket_unique"),
    ],
    API_KEYS: [
        _ascending("key_hash", unique=True, name="key_hash_unique"),
        _ascending("project_id", name="project"),
        # At most one active development key per project, however many instances start
        # together on an empty database (only those keys have the field; revoking unsets it).
        _ascending("dev_project", unique=True, sparse=True, name="dev_project_unique"),
    ],
    # Websites are found by their _id (a UUID); listing is per project.
    WEBSITES: [
        _ascending("project_id", name="project"),
    ],
    IDEMPOTENCY: [
        _ascending("project_id", "scope", "key", unique=True, name="project_scope_key_unique"),
        _expiring("created_at", IDEMPOTENCY_TTL_SECONDS),
    ],
    # Shared rate-limit counts (trackd/storage/ratelimits.py), gone once their window has passed.
    RATE_LIMIT_COUNTS: [
        _expiring("expires_at", 0),
    ],
    # Tracking plans: one document per (project, version); the latest is the current.
    TRACKING_PLANS: [
        _ascending("project_id", "version", unique=True, name="project_version_unique"),
    ],
    # Events a blocking plan refused, one per (project, event id), gone after 30 days.
    QUARANTINE: [
        _ascending("project_id", "event_id", unique=True, name="project_event_id_unique"),
        _ascending("project_id", "name", name="project_name"),
        _expiring("quarantined_at", QUARANTINE_TTL_SECONDS),
    ],
    # The violations report reads a project's entries since a time.
    PLAN_VIOLATIONS: [
        _ascending("project_id", "at", name="project_at"),
        _expiring("at", PLAN_VIOLATIONS_TTL_SECONDS),
    ],
    WEBHOOK_ENDPOINTS: [
        _ascending("project_id", "created_at", name="project"),
        _ascending("enabled", "lease_until", name="lease"),
    ],
    WEBHOOK_QUEUE: [
        _ascending("endpoint_id", "msg_id", unique=True, name="endpoint_msg_unique"),
        _ascending("endpoint_id", "seq", name="endpoint_seq"),
        _ascending("endpoint_id", "oldest_at", name="endpoint_oldest"),  # the lag's oldest
    ],
    WEBHOOK_DEAD_LETTERS: [
        _ascending("endpoint_id", "msg_id", unique=True, name="endpoint_msg_unique"),
        _expiring("dead_at", WEBHOOK_RECORDS_TTL_SECONDS),
    ],
    WEBHOOK_ATTEMPTS: [
        _ascending("endpoint_id", "at", name="endpoint_at"),
        _expiring("at", WEBHOOK_RECORDS_TTL_SECONDS),
    ],
    # Decisions kept an hour (their TTL), read per project by time.
    DECISIONS: [
        _ascending("project_id", "at", name="project_at"),
        _expiring("at", DECISIONS_TTL_SECONDS),
    ],
    # One counter per project, minute, kind and key, kept two hours.
    CONSOLE_COUNTS: [
        _ascending("project_id", "minute", "kind", "key", unique=True,
                   name="project_minute_kind_key_unique"),
        _expiring("minute", CONSOLE_COUNTS_TTL_SECONDS),
    ],
    # Instance heartbeats; a dead instance's lingers a minute.
    INSTANCES: [
        _expiring("seen_at", 60),
    ],
}


async def ensure_indexes(db: AsyncDatabase[Any]) -> None:
    """Create every index; a no-op for the ones that already exist."""
    for collection, models in INDEXES.items():
        await db[collection].create_indexes(models)
