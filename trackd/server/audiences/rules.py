"""What audience rules mean: event and property conditions, and when each holds.

An event condition holds for a user's statistics of one event (count, first and last
time); a property condition for a user's profile, looking the property up as a profile
field or as a trait in any of its spellings (``workspaceId`` and ``workspace_id`` are one
property). Parsing them from proto is :mod:`trackd.server.audiences.parsing`; evaluating them
over a project is :mod:`trackd.server.audiences.evaluation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from trackd.storage.audiences import EventStats
from trackd.v1 import audiences_pb2
from trackd.wire.keys import snake_case
from trackd.wire.limits import PROFILE_LIMITS

EventOp = audiences_pb2.EventRuleOperator
PropertyOp = audiences_pb2.PropertyRuleOperator

POSITIVE = {
    audiences_pb2.EVENT_RULE_OPERATOR_HAS_DONE,
    audiences_pb2.EVENT_RULE_OPERATOR_COUNT_GREATER_THAN,
    audiences_pb2.EVENT_RULE_OPERATOR_FIRST_DONE_WITHIN,
    audiences_pb2.EVENT_RULE_OPERATOR_LAST_DONE_WITHIN,
}
WITHIN = {
    audiences_pb2.EVENT_RULE_OPERATOR_FIRST_DONE_WITHIN,
    audiences_pb2.EVENT_RULE_OPERATOR_LAST_DONE_WITHIN,
}
NEEDS_VALUE = {
    audiences_pb2.PROPERTY_RULE_OPERATOR_EQUALS,
    audiences_pb2.PROPERTY_RULE_OPERATOR_NOT_EQUALS,
    audiences_pb2.PROPERTY_RULE_OPERATOR_CONTAINS,
    audiences_pb2.PROPERTY_RULE_OPERATOR_GREATER_THAN,
    audiences_pb2.PROPERTY_RULE_OPERATOR_LESS_THAN,
}
NUMERIC = {
    audiences_pb2.PROPERTY_RULE_OPERATOR_GREATER_THAN,
    audiences_pb2.PROPERTY_RULE_OPERATOR_LESS_THAN,
}
# Profile fields stored outside the traits bag, by their snake_case name.
_PROFILE_FIELDS = {*PROFILE_LIMITS, "external_id", "signed_up_at", "created_at", "updated_at",
                   "emails", "phones"}
# Vendor spellings of profile fields (VibeFollow's signupDate is signed_up_at).
_ALIASES = {"signup_date": "signed_up_at", "signed_up": "signed_up_at"}
_EPOCH_START = datetime.min.replace(tzinfo=UTC)


def _ago(now: datetime, within: timedelta) -> datetime:
    """``now - within``, or the earliest datetime when that precedes year 1."""
    try:
        return now - within
    except OverflowError:
        return _EPOCH_START


def camel_case(name: str) -> str:
    """``workspace_id`` -> ``workspaceId``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class EventCondition:
    op: int
    name: str
    count: int
    within: timedelta | None
    since: datetime | None
    before: datetime | None

    def holds(self, stats: EventStats | None, now: datetime) -> bool:
        if self.op == audiences_pb2.EVENT_RULE_OPERATOR_HAS_NOT_DONE:
            return stats is None
        if stats is None:
            return False
        if self.op == audiences_pb2.EVENT_RULE_OPERATOR_COUNT_GREATER_THAN:
            return stats.count > self.count
        assert self.within is not None or self.op == audiences_pb2.EVENT_RULE_OPERATOR_HAS_DONE
        if self.op == audiences_pb2.EVENT_RULE_OPERATOR_FIRST_DONE_WITHIN:
            return stats.first >= _ago(now, self.within).timestamp()  # type: ignore[arg-type]
        if self.op == audiences_pb2.EVENT_RULE_OPERATOR_LAST_DONE_WITHIN:
            return stats.last >= _ago(now, self.within).timestamp()  # type: ignore[arg-type]
        return True  # HAS_DONE


@dataclass(frozen=True)
class PropertyCondition:
    op: int
    names: tuple[str, ...]  # the stored fields that may hold it, in lookup order
    value: Any
    within: timedelta | None
    before: datetime | None

    def lookup(self, profile: dict[str, Any]) -> Any:
        traits = profile.get("traits") or {}
        for name in self.names:
            if name.startswith("traits."):
                key = name.removeprefix("traits.")
                if key in traits:
                    return traits[key]
            elif profile.get(name) not in (None, "", []):
                return profile[name]
        return None

    def holds(self, profile: dict[str, Any], now: datetime) -> bool:
        actual = self.lookup(profile)
        is_set = actual not in (None, "", [])
        op = self.op
        if op == audiences_pb2.PROPERTY_RULE_OPERATOR_IS_SET:
            return is_set
        if op == audiences_pb2.PROPERTY_RULE_OPERATOR_IS_NOT_SET:
            return not is_set
        if op == audiences_pb2.PROPERTY_RULE_OPERATOR_EQUALS:
            return is_set and _equal(actual, self.value)
        if op == audiences_pb2.PROPERTY_RULE_OPERATOR_NOT_EQUALS:
            return not (is_set and _equal(actual, self.value))
        if not is_set:
            return False
        if op == audiences_pb2.PROPERTY_RULE_OPERATOR_CONTAINS:
            if isinstance(actual, str):
                return isinstance(self.value, str) and self.value.lower() in actual.lower()
            return isinstance(actual, list) and any(_equal(item, self.value) for item in actual)
        if op in NUMERIC:
            if not is_number(actual):
                return False
            if op == audiences_pb2.PROPERTY_RULE_OPERATOR_GREATER_THAN:
                return bool(actual > self.value)
            return bool(actual < self.value)
        moment = _as_datetime(actual)
        if moment is None:
            return False
        if op == audiences_pb2.PROPERTY_RULE_OPERATOR_DATE_WITHIN:
            assert self.within is not None
            return _ago(now, self.within) <= moment <= now
        assert self.before is not None
        return moment < self.before  # DATE_BEFORE


Condition = EventCondition | PropertyCondition
Group = tuple[Condition, ...]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(actual: Any, expected: Any) -> bool:
    if is_number(actual) and is_number(expected):
        return bool(actual == expected)
    return type(actual) is type(expected) and bool(actual == expected)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def property_names(name: str) -> tuple[str, ...]:
    """Where a property rule's property may be stored: a profile field, or a trait in any
    of its spellings."""
    snake = snake_case(name)
    field = _ALIASES.get(snake, snake)
    spellings = tuple(dict.fromkeys((name, snake, camel_case(snake))))
    traits = tuple(f"traits.{spelling}" for spelling in spellings)
    return (field, *traits) if field in _PROFILE_FIELDS else traits

