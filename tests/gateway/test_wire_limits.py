"""The wire's shared limits hold together: what the server allows, protobuf decodes."""

from __future__ import annotations

from trackd.wire import limits


def test_properties_the_server_allows_decode() -> None:
    # The server's message for an undecodable request names MAX_PROPERTY_DEPTH as the
    # rule; that is only true while every request within the rule decodes.
    assert limits.decodable_objects(limits.DEPTH_EVENT_PROPERTIES) >= limits.MAX_PROPERTY_DEPTH


def test_the_timestamp_range_is_years_1_to_9999() -> None:
    from datetime import UTC, datetime

    first = datetime(1, 1, 1, tzinfo=UTC).timestamp()
    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    assert (first, last) == (limits.TIMESTAMP_MIN_SECONDS, limits.TIMESTAMP_MAX_SECONDS)
    assert limits.timestamp_in_range(limits.TIMESTAMP_MAX_SECONDS, 999_999_999)
    assert not limits.timestamp_in_range(limits.TIMESTAMP_MAX_SECONDS + 1, 0)
    assert not limits.timestamp_in_range(0, -1)
