"""What a rate limit is, each scope's default, and how a call is told about it.

:class:`RateLimit` (``100/60``, parsed from the settings by :func:`limits_from`), the
documented default of each scope (:data:`DEFAULT_LIMITS`), the refusal
(:class:`RateLimited`: ``RESOURCE_EXHAUSTED`` with a ``RetryInfo`` and the reason
``RATE_LIMITED``) and the IETF ``ratelimit-policy`` and ``ratelimit`` fields every counted
call carries. The limiter that counts calls across instances is :mod:`trackd.server.ratelimit`.

May import: :mod:`trackd.server.errors` and the generated ``trackd.v1`` code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from trackd.server.errors import ServiceError, reason_name
from trackd.v1 import errors_pb2

GRPC_SCOPE = "grpc"
POLICY_METADATA = "ratelimit-policy"
STATE_METADATA = "ratelimit"

# Counter slots: about 20 per window, at least a second, so a window is a few documents.
SLOTS_PER_WINDOW = 20

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

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def slot_seconds(self) -> float:
        return max(1.0, self.seconds / SLOTS_PER_WINDOW)

    def __str__(self) -> str:
        return f"{self.requests} requests per {self.seconds:g} s"


# Each scope's documented default (the vendors' own: Cueflow 100 per minute per key,
# Databuddy 600); the settings override them.
DEFAULT_LIMITS: Mapping[str, RateLimit | None] = {
    "vibefollow": None,
    "flywheel": None,
    "databuddy": RateLimit(600, 60),
    "cueflow": RateLimit(100, 60),
    # Segment documents no hard limit per write key (it asks for at most 500 requests
    # per second per source), RudderStack none: off, as for the other undocumented ones.
    "segment": None,
    # PostHog does not rate-limit its capture endpoints: off.
    "posthog": None,
    # Amplitude limits events per device and user (30 a second), not requests per key.
    "amplitude": None,
    # Mixpanel's ingestion limit is per project (2 GB of events a minute), not per key.
    "mixpanel": None,
    GRPC_SCOPE: None,
}


class RateLimited(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = reason_name(errors_pb2.ERROR_REASON_RATE_LIMITED)

    def __init__(self, limit: RateLimit, retry_after_seconds: int) -> None:
        super().__init__(f"rate limit exceeded: {limit} per key; "
                         f"retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds

    def details(self) -> list[Any]:
        return [error_details_pb2.RetryInfo(
                    retry_delay=duration_pb2.Duration(seconds=self.retry_after_seconds)),
                *super().details()]


def policy_field(scope: str, limit: RateLimit) -> tuple[str, str]:
    # The IETF draft's window is whole seconds (never ``1e+06``, as ``:g`` would write);
    # a fractional one is rounded up, the conservative side for a client pacing itself.
    return (POLICY_METADATA, f'"{scope}";q={limit.requests};w={math.ceil(limit.seconds)}')


def state_fields(policy: tuple[str, str], scope: str, remaining: int, reset: int) -> tuple[
        tuple[str, str], ...]:
    return (policy, (STATE_METADATA, f'"{scope}";r={remaining};t={reset}'))


def limits_from(specs: Sequence[tuple[str, str | None]]) -> dict[str, RateLimit | None]:
    """The overrides given as settings (scope, spec); None leaves a scope's default."""
    return {scope: RateLimit.parse(spec) for scope, spec in specs if spec is not None}
