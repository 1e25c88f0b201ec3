"""How webhooks are delivered: one dataclass, whose defaults trackd/cli/settings.py reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (1 + 7 attempts, ~27.6 h).
DEFAULT_RETRY_SCHEDULE = "5s,5m,30m,2h,5h,10h,10h"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# The longest step: a wait further out is a mistake (and past what a date can hold).
MAX_STEP_SECONDS = 30 * 86400.0


def parse_schedule(text: str) -> tuple[float, ...]:
    """``5s,5m,2h`` -> seconds; raises ValueError naming what is wrong. Each step is
    finite, more than zero and at most :data:`MAX_STEP_SECONDS` (30 days)."""
    steps = []
    for part in text.split(","):
        part = part.strip()
        unit = next((u for u in ("ms", "s", "m", "h", "d") if part.endswith(u)), None)
        try:
            if unit is None:
                raise ValueError
            value = float(part[: -len(unit)]) * _UNITS[unit]
        except ValueError:
            raise ValueError(f"{part!r} is not a duration such as 5s, 5m, 2h or 500ms") from None
        if not math.isfinite(value):  # nan, inf, 1e400s
            raise ValueError(f"{part!r} is not a finite duration such as 5s, 5m or 2h")
        if value <= 0:
            raise ValueError(f"{part!r} is not more than zero")
        if value > MAX_STEP_SECONDS:
            raise ValueError(f"{part!r} is longer than 30 days")
        steps.append(value)
    return tuple(steps)


@dataclass(frozen=True)
class DeliveryConfig:
    # Users delivered at once per endpoint (a user's own events go one at a time).
    concurrency: int = 16
    # An attempt succeeds with a 2xx within this long.
    timeout_seconds: float = 15.0
    # Waits between attempts (n steps: 1 + n attempts), each with up to ``jitter`` more
    # or less, then dead letter.
    retry_schedule: tuple[float, ...] = field(
        default_factory=lambda: parse_schedule(DEFAULT_RETRY_SCHEDULE))
    jitter: float = 0.1
    # Private, loopback, link-local... addresses allowed (local development, tests).
    allow_private: bool = False
    # An endpoint whose attempts have only failed this long is disabled.
    disable_after_failing_seconds: float = 5 * 24 * 3600.0
    # A deliverer holds an endpoint this long unrenewed; renews 4 times as often.
    lease_seconds: float = 5.0
    # How many events a lane reads from the change stream at a time.
    read_batch: int = 500
    # Bytes of a response read (into the attempts log's error), the rest is discarded.
    max_response_bytes: int = 4096
    # At most this many endpoints delivered by one process.
    max_endpoints: int = 1000
    # At most this many messages in one endpoint's retry queue; a message that would go
    # past it is dead-lettered at once instead (kept 7 days, replayable).
    max_queued: int = 100_000
