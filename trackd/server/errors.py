"""Domain exceptions and their one mapping to ``grpc.Status`` (AIP-193 rich errors).

``ServiceError``               base; carries the gRPC code and an optional ErrorInfo reason.
├── ``InvalidArgument``        INVALID_ARGUMENT + BadRequest field violations.
├── ``Unauthenticated``        UNAUTHENTICATED: no key, unknown key, revoked key.
├── ``PermissionDenied``       PERMISSION_DENIED: the key lacks a scope.
├── ``NotFound``               NOT_FOUND.
├── ``Aborted``                ABORTED: a concurrent request holds the same idempotency key.
├── ``FailedPrecondition``     FAILED_PRECONDITION: a Subscribe cursor the database no longer holds.
└── ``Unavailable``            UNAVAILABLE + RetryInfo: overloaded, or the database is down.

Servicers raise these; :class:`ErrorInterceptor` turns them (and anything unexpected,
as INTERNAL without internals) into a status with ``google.rpc`` details.

ErrorInfo reasons are API: each is a value of the proto enum ``trackd.v1.ErrorReason``
(proto/trackd/v1/errors.proto, where each says when it is sent and what a client should do).
Errors take a reason only as an enum value, and :func:`reason_name` is the one place that
turns it into the string on the wire, so the server cannot send a reason the enum lacks.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from trackd.server import metrics
from trackd.server.interceptors import Handler, UnaryInterceptor, unary_handler
from trackd.storage.errors import StorageError, StorageUnavailable
from trackd.v1 import errors_pb2
from trackd.wire.limits import MAX_PROPERTY_DEPTH

log = logging.getLogger(__name__)

ERROR_DOMAIN = "trackd"
REASON_PREFIX = "ERROR_REASON_"

Reason = errors_pb2.ErrorReason


def reason_name(reason: Reason) -> str:
    """The ErrorInfo reason sent for an enum value: its name without ``ERROR_REASON_``."""
    if reason == errors_pb2.ERROR_REASON_UNSPECIFIED:
        raise ValueError("ERROR_REASON_UNSPECIFIED is never sent")
    # Name() raises ValueError for a number (or anything) that is not a value of the enum.
    return errors_pb2.ErrorReason.Name(reason).removeprefix(REASON_PREFIX)

T = TypeVar("T")

# Trailing metadata the call being handled must carry even when it fails (the rate-limit
# fields): grpc.aio replaces the trailing metadata set before an abort with the status's.
CALL_METADATA: contextvars.ContextVar[tuple[tuple[str, str], ...]] = \
    contextvars.ContextVar("trackd_call_metadata", default=())


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field: ``field`` is a path such as ``events[3].external_user_id``."""

    field: str
    description: str


class ServiceError(Exception):
    """``reason`` is the ErrorInfo reason on the wire ("" sends no ErrorInfo, as INTERNAL)."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = ""

    def __init__(self, message: str, *, reason: Reason | None = None,
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason_name(reason)
        self.metadata = metadata or {}

    def details(self) -> list[Any]:
        if not self.reason:
            return []
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN,
                                            metadata=self.metadata)]


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = reason_name(errors_pb2.ERROR_REASON_INVALID_ARGUMENT)

    def __init__(self, violations: Sequence[FieldViolation], *,
                 reason: Reason | None = None) -> None:
        self.violations = list(violations)
        first = self.violations[0]
        super().__init__(f"{first.field}: {first.description}" if first.field
                         else first.description, reason=reason)

    @classmethod
    def one(cls, field: str, description: str, *,
            reason: Reason | None = None) -> InvalidArgument:
        return cls([FieldViolation(field, description)], reason=reason)

    def details(self) -> list[Any]:
        bad_request = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in self.violations
        ])
        return [bad_request, *super().details()]


def require(value: str, field: str) -> None:
    """A field the request must set: INVALID_ARGUMENT naming it when it is empty."""
    if not value:
        raise InvalidArgument.one(field, "is required")


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = reason_name(errors_pb2.ERROR_REASON_UNAUTHENTICATED)


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = reason_name(errors_pb2.ERROR_REASON_PERMISSION_DENIED)


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    reason = reason_name(errors_pb2.ERROR_REASON_NOT_FOUND)


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED
    reason = reason_name(errors_pb2.ERROR_REASON_ABORTED)


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = reason_name(errors_pb2.ERROR_REASON_CURSOR_EXPIRED)


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = reason_name(errors_pb2.ERROR_REASON_UNAVAILABLE)

    def __init__(self, message: str, *, retry_after_seconds: int = 1,
                 reason: Reason | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_seconds = retry_after_seconds

    def details(self) -> list[Any]:
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=self.retry_after_seconds))
        return [retry, *super().details()]


async def storage_call(operation: Awaitable[T]) -> T:
    """Await a storage operation, turning storage's failures into service errors.

    The one place the server maps storage's exceptions: unreachable or unconfirmed is
    UNAVAILABLE (retry later), anything else INTERNAL; neither carries the driver's text.
    """
    try:
        return await operation
    except StorageUnavailable as exc:
        metrics.set_database_up(False)
        raise Unavailable("the database is unavailable; retry later") from exc
    except StorageError as exc:
        raise ServiceError("the database failed the operation") from exc


@dataclass(frozen=True)
class _Status(grpc.Status):  # type: ignore[misc]  # grpc is untyped
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def status_message(error: ServiceError) -> status_pb2.Status:
    """The ``google.rpc.Status`` of ``error``: its code, message and packed details."""
    packed = []
    for detail in error.details():
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=error.code.value[0], message=error.message, details=packed)


def to_status(error: ServiceError) -> grpc.Status:
    result: grpc.Status = rpc_status.to_status(status_message(error))
    extra = CALL_METADATA.get()
    if extra:
        return _Status(result.code, result.details, (*result.trailing_metadata, *extra))
    return result


INTERNAL = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")

class ErrorInterceptor(UnaryInterceptor):
    """Turns :class:`ServiceError` into its status; hides anything else as INTERNAL.

    ``on_refused`` (the console's decision recorder) hears of each ServiceError first; it
    must not block (it only appends to memory)."""

    def __init__(self, on_refused: Callable[[ServiceError], None] | None = None) -> None:
        super().__init__()
        self._on_refused = on_refused

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner: Handler = handler.unary_unary
        deserialize = handler.request_deserializer

        async def guarded(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                # Decoding here, not in grpc, so a message protobuf cannot decode (nested
                # past its depth limit) is the client's INVALID_ARGUMENT, not UNKNOWN.
                try:
                    request = deserialize(raw) if deserialize else raw
                except DecodeError as exc:
                    raise InvalidArgument.one(
                        "", "the request could not be decoded: it is malformed or nested "
                        "deeper than protobuf allows (properties nest at most "
                        f"{MAX_PROPERTY_DEPTH} levels)",
                        reason=errors_pb2.ERROR_REASON_MALFORMED_REQUEST) from exc
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except ServiceError as exc:
                if self._on_refused is not None:
                    self._on_refused(exc)
                await context.abort_with_status(to_status(exc))
            except Exception:
                log.exception("unexpected error in %s", method)
                await context.abort_with_status(rpc_status.to_status(INTERNAL))

        return unary_handler(guarded, handler, deserializer=False)
