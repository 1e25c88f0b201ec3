"""The one table from gRPC status to HTTP status, and the error model dialects render.

Every failure a dialect renders is a :class:`Problem`: either decoded from the server's
``grpc.Status`` (its code, and the ``google.rpc`` BadRequest / ErrorInfo / RetryInfo
details), or raised by the gateway itself for what only HTTP has (a body that is not
JSON, one over the size limit). Dialects override single statuses as data
(VibeFollow answers validation errors with 422, not 400).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import grpc
from google.rpc import error_details_pb2, status_pb2

# After grpc-gateway's HTTPStatusFromCode.
HTTP_STATUS: Mapping[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}

# snake_case error codes for envelopes that carry one: a reason's own code when it has
# one, else the HTTP status's.
REASON_CODES: Mapping[str, str] = {
    "IDEMPOTENCY_KEY_REUSE": "idempotency_key_reuse",
    "IDEMPOTENCY_KEY_IN_USE": "idempotency_key_in_use",
    "TRACKING_PLAN_VIOLATION": "tracking_plan_violation",
}
STATUS_CODES: Mapping[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    431: "request_header_fields_too_large",
    499: "client_closed_request",
    500: "internal_error",
    501: "not_implemented",
    503: "service_unavailable",
    504: "gateway_timeout",
}


@dataclass(frozen=True)
class Problem:
    """A failure to render: HTTP status, snake_case code, message, offending field."""

    status: int
    message: str
    field: str = ""
    reason: str = ""
    retry_after: int | None = None
    # For a problem with one field: what is wrong with it, without its name. ``message``
    # is then "<field> <description>", so a dialect renames the field (:meth:`renamed`)
    # without rewriting text.
    description: str = ""

    @classmethod
    def invalid(cls, status: int, field: str, description: str) -> Problem:
        """``field`` fails validation (INVALID_ARGUMENT): "<field> <description>"."""
        return cls(status, f"{field} {description}", field, "INVALID_ARGUMENT",
                   description=description)

    def renamed(self, field: str) -> Problem:
        """This problem about ``field`` instead: its name in the message too."""
        if not self.description:
            return replace(self, field=field)
        return replace(self, field=field, message=f"{field} {self.description}")

    @property
    def code(self) -> str:
        return REASON_CODES.get(self.reason) or STATUS_CODES.get(self.status, "error")


class ProblemError(Exception):
    """Raised inside a dialect handler to answer with ``problem``."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


_DETAILS_KEY = "grpc-status-details-bin"

# What a client reads when the status did not come from trackd's server (which sends
# every status with google.rpc details; grpc's own statuses have none): grpc's own text
# names addresses, transports and the driver, which are none of a client's business.
GENERIC_MESSAGES: Mapping[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "the service is temporarily unavailable; retry later",
    grpc.StatusCode.DEADLINE_EXCEEDED: "the request took too long; retry later",
    grpc.StatusCode.CANCELLED: "the request was cancelled",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "the request is too large or too many were sent",
}
GENERIC_MESSAGE = "internal error"


def problem_from_rpc_error(
    error: grpc.aio.AioRpcError,
    overrides: Mapping[grpc.StatusCode, int] | None = None,
    field_name: Callable[[str], str] = lambda path: path,
) -> Problem:
    """Decode the server's status; ``field_name`` turns proto paths into the dialect's."""
    code = error.code()
    status = (overrides or {}).get(code) or HTTP_STATUS.get(code, 500)
    message = error.details() or code.name.lower()
    from_trackd = False
    field = reason = description = ""
    retry_after = None
    for key, value in error.trailing_metadata() or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        from_trackd = True  # trackd's server sends every status it makes with details
        for detail in status_pb2.Status.FromString(value).details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                if bad_request.field_violations and not field:
                    violation = bad_request.field_violations[0]
                    field = field_name(violation.field)
                    description = violation.description if field else ""
                    message = f"{field} {description}" if field else violation.description
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
                retry_after = max(1, math.ceil(delay))
    if not from_trackd:
        message, field, description = GENERIC_MESSAGES.get(code, GENERIC_MESSAGE), "", ""
    if status in (429, 503) and retry_after is None:
        retry_after = 1  # a 429 or 503 always tells the client when to come back
    return Problem(status, message, field, reason, retry_after, description)
