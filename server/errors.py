"""Domain exceptions and their one mapping to ``grpc.Status`` (AIP-193 rich errors).

``ServiceError``               base; carries the gRPC code and an optional ErrorInfo reason.
├── ``InvalidArgument``        INVALID_ARGUMENT + BadRequest field violations.
├── ``Unauthenticated``        UNAUTHENTICATED: no key, unknown key, revoked key.
├── ``PermissionDenied``       PERMISSION_DENIED: the key lacks a scope.
├── ``NotFound``               NOT_FOUND.
├── ``Aborted``                ABORTED: a concurrent request holds the same idempotency key.
└── ``Unavailable``            UNAVAILABLE + RetryInfo: overloaded, or the database is down.

Servicers raise these; :class:`ErrorInterceptor` turns them (and anything unexpected,
as INTERNAL without internals) into a status with ``google.rpc`` details.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger(__name__)

ERROR_DOMAIN = "trackd"

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
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = ""

    def __init__(self, message: str, *, reason: str = "",
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.metadata = metadata or {}

    def details(self) -> list[Any]:
        if not self.reason:
            return []
        return [error_details_pb2.ErrorInfo(reason=self.reason, domain=ERROR_DOMAIN,
                                            metadata=self.metadata)]


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation], *, reason: str = "") -> None:
        self.violations = list(violations)
        first = self.violations[0]
        super().__init__(f"{first.field}: {first.description}" if first.field
                         else first.description, reason=reason)

    @classmethod
    def one(cls, field: str, description: str, *, reason: str = "") -> InvalidArgument:
        return cls([FieldViolation(field, description)], reason=reason)

    def details(self) -> list[Any]:
        bad_request = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in self.violations
        ])
        return [bad_request, *super().details()]


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED
    reason = "ABORTED"


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"

    def __init__(self, message: str, *, retry_after_seconds: int = 1, reason: str = "") -> None:
        super().__init__(message, reason=reason)
        self.retry_after_seconds = retry_after_seconds

    def details(self) -> list[Any]:
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=self.retry_after_seconds))
        return [retry, *super().details()]


@dataclass(frozen=True)
class _Status(grpc.Status):  # type: ignore[misc]  # grpc is untyped
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def to_status(error: ServiceError) -> grpc.Status:
    packed = []
    for detail in error.details():
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    status = status_pb2.Status(code=error.code.value[0], message=error.message, details=packed)
    result: grpc.Status = rpc_status.to_status(status)
    extra = CALL_METADATA.get()
    if extra:
        return _Status(result.code, result.details, (*result.trailing_metadata, *extra))
    return result


INTERNAL = status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")

Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Turns :class:`ServiceError` into its status; hides anything else as INTERNAL."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner: Handler = handler.unary_unary
        deserialize = handler.request_deserializer
        method = handler_call_details.method

        async def guarded(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                # Decoding here, not in grpc, so a message protobuf cannot decode (nested
                # past its depth limit) is the client's INVALID_ARGUMENT, not UNKNOWN.
                try:
                    request = deserialize(raw) if deserialize else raw
                except DecodeError as exc:
                    raise InvalidArgument.one(
                        "", "the request could not be decoded: it is malformed or nested "
                        "deeper than protobuf allows (properties nest at most 32 levels)",
                        reason="MALFORMED_REQUEST") from exc
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except ServiceError as exc:
                await context.abort_with_status(to_status(exc))
            except Exception:
                log.exception("unexpected error in %s", method)
                await context.abort_with_status(rpc_status.to_status(INTERNAL))

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )
