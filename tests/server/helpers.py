"""Helpers for the gRPC tests: building events, sending auth metadata, decoding rich errors.

Errors are decoded from the ``grpc-status-details-bin`` trailer with
``grpc_status.rpc_status.from_call`` (it works on a ``grpc.aio.AioRpcError``, whose
``code()``, ``details()`` and ``trailing_metadata()`` are plain methods) and compared as
a whole, so a test pins the code, the message and every ``google.rpc`` detail at once.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from trackd.v1 import tracking_pb2

DOMAIN = "trackd"
Metadata = tuple[tuple[str, str], ...]


def auth(key: str) -> Metadata:
    return (("authorization", f"Bearer {key}"),)


def event(
    name: str = "user_signed_up",
    *,
    user: str = "u-1",
    anonymous_id: str = "",
    event_id: str = "",
    properties: dict[str, Any] | None = None,
    **fields: Any,
) -> tracking_pb2.Event:
    """An Event; ``properties`` go through ``Struct.update`` (no re-parse, any depth)."""
    ev = tracking_pb2.Event(name=name, external_user_id=user, anonymous_id=anonymous_id,
                            event_id=event_id, **fields)
    if properties is not None:
        ev.properties.update(properties)
    return ev


def track(ev: tracking_pb2.Event, idempotency_key: str = "") -> tracking_pb2.TrackEventRequest:
    request = tracking_pb2.TrackEventRequest(idempotency_key=idempotency_key)
    request.event.CopyFrom(ev)
    return request


def batch(
    events: list[tracking_pb2.Event], idempotency_key: str = ""
) -> tracking_pb2.BatchTrackRequest:
    request = tracking_pb2.BatchTrackRequest(idempotency_key=idempotency_key)
    for ev in events:  # CopyFrom, unlike the constructor, copies any nesting depth
        request.events.add().CopyFrom(ev)
    return request


@dataclass(frozen=True)
class RichError:
    """Everything a failed call told the client."""

    code: grpc.StatusCode
    message: str
    violations: tuple[tuple[str, str], ...] = ()
    error_info: tuple[str, str, tuple[tuple[str, str], ...]] | None = None
    retry_delay_seconds: int | None = None
    detail_types: tuple[str, ...] = field(default=())


def decode(error: grpc.aio.AioRpcError) -> RichError:
    status = rpc_status.from_call(error)  # also checks code and message match the trailer
    assert status is not None, f"no grpc-status-details-bin trailer on {error!r}"
    violations: tuple[tuple[str, str], ...] = ()
    error_info = None
    retry = None
    types = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations = tuple((v.field, v.description) for v in bad_request.field_violations)
            types.append("BadRequest")
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            error_info = (info.reason, info.domain, tuple(sorted(info.metadata.items())))
            types.append("ErrorInfo")
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry_info = error_details_pb2.RetryInfo()
            detail.Unpack(retry_info)
            assert retry_info.retry_delay.nanos == 0
            retry = retry_info.retry_delay.seconds
            types.append("RetryInfo")
        else:
            types.append(detail.type_url)
    return RichError(error.code(), status.message, violations, error_info, retry,
                     tuple(sorted(types)))


async def rpc_error(call: Awaitable[Any]) -> RichError:
    """Await ``call``, which must fail, and decode its status."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return decode(info.value)


def invalid(field_path: str, description: str, *, reason: str = "INVALID_ARGUMENT",
            more: tuple[tuple[str, str], ...] = ()) -> RichError:
    """The INVALID_ARGUMENT a single (first) field violation produces."""
    return RichError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{field_path}: {description}",
        violations=((field_path, description), *more),
        error_info=(reason, DOMAIN, ()),
        detail_types=("BadRequest", "ErrorInfo"),
    )


def unavailable(message: str) -> RichError:
    return RichError(
        grpc.StatusCode.UNAVAILABLE,
        message,
        error_info=("UNAVAILABLE", DOMAIN, ()),
        retry_delay_seconds=1,
        detail_types=("ErrorInfo", "RetryInfo"),
    )


def unauthenticated(message: str, reason: str) -> RichError:
    return RichError(grpc.StatusCode.UNAUTHENTICATED, message,
                     error_info=(reason, DOMAIN, ()), detail_types=("ErrorInfo",))


MISSING_KEY = unauthenticated("missing API key: send 'authorization: Bearer <key>'",
                              "API_KEY_MISSING")
INVALID_KEY = unauthenticated("invalid or revoked API key", "API_KEY_INVALID")
SCOPE_MISSING = RichError(
    grpc.StatusCode.PERMISSION_DENIED,
    "API key missing track:events scope",
    error_info=("SCOPE_MISSING", DOMAIN, (("scope", "track:events"),)),
    detail_types=("ErrorInfo",),
)
DB_DOWN_AUTH = unavailable("the database is unavailable; retry later")
DB_DOWN_WRITE = unavailable(
    "the database is unavailable; the events were not stored, retry later")


def typed(value: Any) -> Any:
    """``value`` with every scalar tagged by its type, so 1 and 1.0 compare unequal."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, bool) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, int):  # bson.Int64 (read back for large values) is an int
        return ("int", int(value))
    if isinstance(value, float):
        return ("float", value)
    return (type(value).__name__, value)


def to_ms(moment: datetime) -> datetime:
    """``moment`` at the database's millisecond precision (BSON dates truncate)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def struct_plain(struct: Any) -> dict[str, Any]:
    """A Struct's values as Python values, every number a float (what it holds)."""
    def plain(value: Any) -> Any:
        kind = value.WhichOneof("kind")
        if kind == "struct_value":
            return struct_plain(value.struct_value)
        if kind == "list_value":
            return [plain(item) for item in value.list_value.values]
        return None if kind in (None, "null_value") else getattr(value, kind)
    return {key: plain(value) for key, value in struct.fields.items()}


def as_json(ev: tracking_pb2.Event) -> tracking_pb2.Event:
    """``ev`` with its properties moved from the Struct into ``properties_json``, written
    by the standard library (compact, UTF-8, NaN and Infinity as JavaScript writes them),
    so not byte for byte what orjson would write; its numbers are the Struct's doubles."""
    moved = tracking_pb2.Event()
    moved.CopyFrom(ev)
    if ev.HasField("properties"):
        moved.ClearField("properties")
        moved.properties_json = json.dumps(struct_plain(ev.properties), separators=(",", ":"),
                                           ensure_ascii=False).encode()
    return moved


def encoded(ev: tracking_pb2.Event, encoding: str) -> tracking_pb2.Event:
    """``ev`` with its properties in ``encoding``: "struct" (as built) or "json"."""
    return as_json(ev) if encoding == "json" else ev


def stored_form(value: Any) -> Any:
    """``value`` as trackd stores properties: integral numbers within ±2^53 as integers."""
    if isinstance(value, dict):
        return {key: stored_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [stored_form(item) for item in value]
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2.0**53:
        return int(value)
    return value
