"""Per-key request rate limits: a token bucket per (dialect, credential).

Each dialect names its limit (``RateLimit``) as data; this module only counts. Buckets
live in the gateway process, and the oldest are dropped past ``max_keys`` so a flood of
made-up keys cannot grow memory without bound.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*s?\s*$")


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` per ``seconds``, with bursts up to ``requests``."""

    requests: int
    seconds: float

    @classmethod
    def parse(cls, spec: str) -> RateLimit | None:
        """``"100/60"`` (100 requests per 60 s); ``""``, ``"0"`` or ``"off"`` = no limit."""
        if spec.strip().lower() in ("", "0", "off", "none"):
            return None
        match = _SPEC.match(spec)
        if not match or int(match.group(1)) <= 0 or float(match.group(2)) <= 0:
            raise ValueError(f"rate limit {spec!r} is not of the form REQUESTS/SECONDS")
        return cls(int(match.group(1)), float(match.group(2)))

    def __str__(self) -> str:
        return f"{self.requests} requests per {self.seconds:g} s"


class RateLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys

    def acquire(self, scope: str, credential: str, limit: RateLimit) -> int | None:
        """Take one request's token; None if allowed, else seconds until one is free."""
        now = time.monotonic()
        rate = limit.requests / limit.seconds
        key = (scope, credential)
        tokens, last = self._buckets.pop(key, (float(limit.requests), now))
        tokens = min(float(limit.requests), tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = None
        else:
            self._buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1.0 - tokens) / rate))
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait
