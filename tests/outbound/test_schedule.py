"""The retry schedule: its setting's syntax, jitter, Retry-After (seconds or an HTTP date),
and the end of the schedule (a dead letter)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.durability.harness import trackd_command
from trackd.outbound.config import DEFAULT_RETRY_SCHEDULE, parse_schedule
from trackd.outbound.schedule import MAX_RETRY_AFTER_SECONDS, next_delay, retry_after_seconds


def test_the_default_schedule_is_svix_s() -> None:
    assert parse_schedule(DEFAULT_RETRY_SCHEDULE) == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert parse_schedule("500ms, 2s,1d") == (0.5, 2, 86400)


@pytest.mark.parametrize(("text", "why"), [
    ("", "'' is not a duration"), ("5", "'5' is not a duration"),
    ("5x", "'5x' is not a duration"), ("s", "'s' is not a duration"),
    ("5s,,5s", "'' is not a duration"), ("-1s", "'-1s' is not more than zero"),
    ("0s", "'0s' is not more than zero"), ("5s,nans", "'nans' is not a finite duration"),
    ("infs", "'infs' is not a finite duration"), ("1e400s", "'1e400s' is not a finite"),
    ("1e306d", "'1e306d' is not a finite"), ("31d", "'31d' is longer than 30 days"),
    ("1e300s", "'1e300s' is longer than 30 days")])
def test_a_malformed_schedule_is_refused_naming_the_part(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_schedule(text)


def test_a_bad_schedule_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    result = trackd_command("serve", cwd=tmp_path, TRACKD_WEBHOOK_RETRY_SCHEDULE="5s,nans")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "trackd: invalid TRACKD_WEBHOOK_RETRY_SCHEDULE: Value error, 'nans' is not a finite "
        "duration such as 5s, 5m or 2h (got '5s,nans')"]
    assert result.stdout == ""


def test_jitter_stays_within_its_bounds_and_the_schedule_ends() -> None:
    schedule = (10.0, 100.0)
    delays = [next_delay(schedule, 1, 0.1, None) for _ in range(200)]
    assert all(d is not None and 9.0 <= d <= 11.0 for d in delays)
    assert len(set(delays)) > 1
    second = next_delay(schedule, 2, 0.1, None)
    assert second is not None
    assert 90.0 <= second <= 110.0
    assert next_delay(schedule, 3, 0.1, None) is None  # 1 + 2 attempts: dead letter


def test_retry_after_is_a_floor() -> None:
    assert next_delay((1.0,), 1, 0.0, 30.0) == 30.0
    assert next_delay((60.0,), 1, 0.0, 30.0) == 60.0


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds(format_datetime(now + timedelta(minutes=2), usegmt=True),
                               now) == 120.0
    assert retry_after_seconds(format_datetime(now - timedelta(minutes=2), usegmt=True),
                               now) == 0.0
    assert retry_after_seconds("-5", now) == 0.0
    assert retry_after_seconds("10000000", now) == MAX_RETRY_AFTER_SECONDS
    for junk in (None, "", "soon", "nan"):
        assert retry_after_seconds(junk, now) is None
