"""When a failed message is tried again: the schedule's next step, with jitter, and never
sooner than the receiver's ``Retry-After`` (on a 429 or 503)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A Retry-After further out than this is not believed (a receiver's mistake must not
# park a message for days); the schedule's own step still applies.
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0


def now_utc() -> datetime:
    return datetime.now(UTC)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from ``now``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def next_delay(schedule: tuple[float, ...], failed_attempts: int, jitter: float,
               retry_after: float | None) -> float | None:
    """Seconds until the next attempt after ``failed_attempts`` failures; None: no more
    (dead letter)."""
    if failed_attempts > len(schedule):
        return None
    step = schedule[failed_attempts - 1]
    delay = step * (1 + random.uniform(-jitter, jitter))
    return max(delay, retry_after or 0.0)
