"""Times a request carries, read so that one out of range is the client's error.

The protobuf runtime raises ``ValueError`` or ``OverflowError`` converting a Timestamp
or Duration outside its range; out of a servicer that would answer INTERNAL (UNKNOWN on
a stream). These answer INVALID_ARGUMENT naming the field instead. Imports only
trackd.wire, trackd.server.errors and the generated protobuf types.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2

from trackd.server.errors import InvalidArgument
from trackd.wire.limits import timestamp_in_range

OUT_OF_RANGE = "is out of range"


def timestamp_field(value: timestamp_pb2.Timestamp, field: str) -> datetime:
    """``value`` as an aware UTC datetime; INVALID_ARGUMENT on ``field`` beyond years
    1-9999."""
    if not timestamp_in_range(value.seconds, value.nanos):
        raise InvalidArgument.one(field, OUT_OF_RANGE)
    return value.ToDatetime(tzinfo=UTC)


def duration_field(value: duration_pb2.Duration, field: str) -> timedelta:
    """``value`` as a timedelta; INVALID_ARGUMENT on ``field`` beyond a Duration's range."""
    try:
        return value.ToTimedelta()
    except (OverflowError, ValueError):
        raise InvalidArgument.one(field, OUT_OF_RANGE) from None
