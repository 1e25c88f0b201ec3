from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_ARGUMENT: _ClassVar[ErrorReason]
    ERROR_REASON_MALFORMED_REQUEST: _ClassVar[ErrorReason]
    ERROR_REASON_IDEMPOTENCY_KEY_REUSE: _ClassVar[ErrorReason]
    ERROR_REASON_UNAUTHENTICATED: _ClassVar[ErrorReason]
    ERROR_REASON_API_KEY_MISSING: _ClassVar[ErrorReason]
    ERROR_REASON_API_KEY_INVALID: _ClassVar[ErrorReason]
    ERROR_REASON_PERMISSION_DENIED: _ClassVar[ErrorReason]
    ERROR_REASON_SCOPE_MISSING: _ClassVar[ErrorReason]
    ERROR_REASON_ORIGIN_NOT_AUTHORIZED: _ClassVar[ErrorReason]
    ERROR_REASON_WEBSITE_SCOPE_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_WEBSITE_NOT_ALLOWED: _ClassVar[ErrorReason]
    ERROR_REASON_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_USER_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_WEBSITE_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_ABORTED: _ClassVar[ErrorReason]
    ERROR_REASON_IDEMPOTENCY_KEY_IN_USE: _ClassVar[ErrorReason]
    ERROR_REASON_UNAVAILABLE: _ClassVar[ErrorReason]
    ERROR_REASON_RATE_LIMITED: _ClassVar[ErrorReason]
    ERROR_REASON_CURSOR_EXPIRED: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_INVALID_ARGUMENT: ErrorReason
ERROR_REASON_MALFORMED_REQUEST: ErrorReason
ERROR_REASON_IDEMPOTENCY_KEY_REUSE: ErrorReason
ERROR_REASON_UNAUTHENTICATED: ErrorReason
ERROR_REASON_API_KEY_MISSING: ErrorReason
ERROR_REASON_API_KEY_INVALID: ErrorReason
ERROR_REASON_PERMISSION_DENIED: ErrorReason
ERROR_REASON_SCOPE_MISSING: ErrorReason
ERROR_REASON_ORIGIN_NOT_AUTHORIZED: ErrorReason
ERROR_REASON_WEBSITE_SCOPE_MISMATCH: ErrorReason
ERROR_REASON_WEBSITE_NOT_ALLOWED: ErrorReason
ERROR_REASON_NOT_FOUND: ErrorReason
ERROR_REASON_USER_NOT_FOUND: ErrorReason
ERROR_REASON_WEBSITE_NOT_FOUND: ErrorReason
ERROR_REASON_ABORTED: ErrorReason
ERROR_REASON_IDEMPOTENCY_KEY_IN_USE: ErrorReason
ERROR_REASON_UNAVAILABLE: ErrorReason
ERROR_REASON_RATE_LIMITED: ErrorReason
ERROR_REASON_CURSOR_EXPIRED: ErrorReason
