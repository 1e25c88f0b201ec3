"""Which failures are retried, and after how long.

Retried, with the same request (same event ids, same idempotency key), so a retry can
store nothing twice: UNAVAILABLE (overloaded, database down, connection lost),
RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED (the first attempt may have been stored: the ids
dedupe it) and ABORTED (the server is still running an earlier attempt of the same
idempotency key). Never retried: everything else, notably INVALID_ARGUMENT,
UNAUTHENTICATED and PERMISSION_DENIED; the last two also stop the client, since every
later request would fail the same way.

The wait before retry ``n`` (0-based) is "full jitter" exponential backoff,
``uniform(0, min(cap, base * 2**n))``, and never less than the server's
``google.rpc.RetryInfo.retry_delay`` when the status carries one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2

from trackd_client.errors import FieldViolation

RETRYABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
})
STOPS_THE_CLIENT = frozenset({grpc.StatusCode.UNAUTHENTICATED,
                              grpc.StatusCode.PERMISSION_DENIED})
DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class Details:
    """The ``google.rpc`` details of a failed call that the SDK acts on."""

    retry_delay: float | None = None
    reason: str = ""
    field_violations: tuple[FieldViolation, ...] = ()


def details(trailing_metadata: Sequence[tuple[str, str | bytes]] | None) -> Details:
    """RetryInfo, ErrorInfo and BadRequest from ``grpc-status-details-bin``."""
    for key, value in trailing_metadata or ():
        if key != DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # malformed details: act on the code alone
            return Details()
        delay: float | None = None
        reason = ""
        violations: list[FieldViolation] = []
        for packed in status.details:
            if packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                packed.Unpack(info)
                delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            elif packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                error_info = error_details_pb2.ErrorInfo()
                packed.Unpack(error_info)
                reason = error_info.reason
            elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                packed.Unpack(bad)
                violations.extend(FieldViolation(v.field, v.description)
                                  for v in bad.field_violations)
        return Details(delay, reason, tuple(violations))
    return Details()


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, floored by the server's RetryInfo."""

    base: float = 0.1
    cap: float = 10.0

    def delay(self, attempt: int, server_delay: float | None = None,
              rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 32))
        jittered = (rng or random).uniform(0.0, ceiling)
        return max(jittered, server_delay or 0.0)
