"""Audiences: rules parsed from proto, and their evaluation over events and profiles.

A group (AND of rules) is evaluated as set algebra over external ids, cheapest first:
the positive event rules (has done, count greater than, first/last done within) each
yield the users who satisfy them, and every later query is narrowed to the users still
in the running; has-not-done rules then subtract; property rules are checked on the
surviving users' profiles. A group without a positive event rule starts from every user
of the project. Only users with a profile can match: events buffered for a user who was
never upserted count from the moment the user is. Statistics and the users come from the
audience index (server/audience_index.py) when it serves the project, else from queries.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import struct_pb2

from server.audience_index import IndexView
from server.errors import FieldViolation, InvalidArgument
from server.validation import MAX_NAME_CHARS, PROFILE_LIMITS
from storage.audiences import IN_LOOKUP_LIMIT, AudienceQueries, EventStats
from trackd.v1 import audiences_pb2

MAX_GROUPS = 20
MAX_RULES_PER_GROUP = 20

EventOp = audiences_pb2.EventRuleOperator
PropertyOp = audiences_pb2.PropertyRuleOperator

_POSITIVE = {
    audiences_pb2.EVENT_RULE_OPERATOR_HAS_DONE,
    audiences_pb2.EVENT_RULE_OPERATOR_COUNT_GREATER_THAN,
    audiences_pb2.EVENT_RULE_OPERATOR_FIRST_DONE_WITHIN,
    audiences_pb2.EVENT_RULE_OPERATOR_LAST_DONE_WITHIN,
}
_WITHIN = {
    audiences_pb2.EVENT_RULE_OPERATOR_FIRST_DONE_WITHIN,
    audiences_pb2.EVENT_RULE_OPERATOR_LAST_DONE_WITHIN,
}
_NEEDS_VALUE = {
    audiences_pb2.PROPERTY_RULE_OPERATOR_EQUALS,
    audiences_pb2.PROPERTY_RULE_OPERATOR_NOT_EQUALS,
    audiences_pb2.PROPERTY_RULE_OPERATOR_CONTAINS,
    audiences_pb2.PROPERTY_RULE_OPERATOR_GREATER_THAN,
    audiences_pb2.PROPERTY_RULE_OPERATOR_LESS_THAN,
}
_NUMERIC = {
    audiences_pb2.PROPERTY_RULE_OPERATOR_GREATER_THAN,
    audiences_pb2.PROPERTY_RULE_OPERATOR_LESS_THAN,
}
# Profile fields stored outside the traits bag, by their snake_case name.
_PROFILE_FIELDS = {*PROFILE_LIMITS, "external_id", "signed_up_at", "created_at", "updated_at",
                   "emails", "phones"}
# Vendor spellings of profile fields (VibeFollow's signupDate is signed_up_at).
_ALIASES = {"signup_date": "signed_up_at", "signed_up": "signed_up_at"}
# The ranges of google.protobuf.Timestamp (years 1 to 9999) and Duration (10,000 years);
# beyond them the conversions to datetime and timedelta fail.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_MAX_DURATION_SECONDS = 315_576_000_000
_EPOCH_START = datetime.min.replace(tzinfo=UTC)


def _ago(now: datetime, within: timedelta) -> datetime:
    """``now - within``, or the earliest datetime when that precedes year 1."""
    try:
        return now - within
    except OverflowError:
        return _EPOCH_START


def snake_case(name: str) -> str:
    """``workspaceId`` -> ``workspace_id``; snake_case names are returned unchanged."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


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
        if op in _NUMERIC:
            if not _is_number(actual):
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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(actual: Any, expected: Any) -> bool:
    if _is_number(actual) and _is_number(expected):
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


def _plain(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        return int(number) if number.is_integer() else number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "list_value":
        return [_plain(item) for item in value.list_value.values]
    if kind == "struct_value":
        return {key: _plain(item) for key, item in value.struct_value.fields.items()}
    return None


def property_names(name: str) -> tuple[str, ...]:
    """Where a property rule's property may be stored: a profile field, or a trait in any
    of its spellings."""
    snake = snake_case(name)
    field = _ALIASES.get(snake, snake)
    spellings = tuple(dict.fromkeys((name, snake, camel_case(snake))))
    traits = tuple(f"traits.{spelling}" for spelling in spellings)
    return (field, *traits) if field in _PROFILE_FIELDS else traits


def _duration(value: Any, path: str, violations: list[FieldViolation]) -> timedelta | None:
    """A Duration as a timedelta; None, with a violation, when out of Duration's range."""
    if abs(value.seconds) > _MAX_DURATION_SECONDS or abs(value.nanos) >= 10**9:
        violations.append(FieldViolation(path, "is out of range"))
        return None
    within: timedelta = value.ToTimedelta()
    return within


def _timestamp(value: Any, path: str, violations: list[FieldViolation]) -> datetime | None:
    """A Timestamp as a datetime; None, with a violation, when out of Timestamp's range."""
    if not (_MIN_SECONDS <= value.seconds <= _MAX_SECONDS) or not 0 <= value.nanos < 10**9:
        violations.append(FieldViolation(path, "is out of range"))
        return None
    moment: datetime = value.ToDatetime(tzinfo=UTC)
    return moment


def parse_audience(audience: audiences_pb2.Audience, path: str) -> tuple[Group, ...]:
    """The audience's conditions; INVALID_ARGUMENT naming every invalid rule's path."""
    violations: list[FieldViolation] = []
    if len(audience.groups) > MAX_GROUPS:
        violations.append(FieldViolation(f"{path}.groups",
                                         f"must hold at most {MAX_GROUPS} groups"))
    groups = []
    for g, group in enumerate(audience.groups):
        group_path = f"{path}.groups[{g}]"
        if not group.rules:
            violations.append(FieldViolation(f"{group_path}.rules", "must hold at least one rule"))
        elif len(group.rules) > MAX_RULES_PER_GROUP:
            violations.append(FieldViolation(
                f"{group_path}.rules", f"must hold at most {MAX_RULES_PER_GROUP} rules"))
        conditions: list[Condition] = []
        for r, rule in enumerate(group.rules):
            rule_path = f"{group_path}.rules[{r}]"
            kind = rule.WhichOneof("kind")
            if kind == "event":
                condition: Condition | None = _event_condition(
                    rule.event, f"{rule_path}.event", violations)
            elif kind == "property":
                condition = _property_condition(rule.property, f"{rule_path}.property",
                                                violations)
            else:
                violations.append(FieldViolation(rule_path, "must be an event or a property rule"))
                condition = None
            if condition is not None:
                conditions.append(condition)
        groups.append(tuple(conditions))
    if violations:
        raise InvalidArgument(violations)
    return tuple(groups)


def _event_condition(rule: audiences_pb2.EventRule, path: str,
                     violations: list[FieldViolation]) -> EventCondition | None:
    start = len(violations)
    if rule.operator not in EventOp.values() or \
            rule.operator == audiences_pb2.EVENT_RULE_OPERATOR_UNSPECIFIED:
        violations.append(FieldViolation(f"{path}.operator", "is required"))
    if not rule.event_name:
        violations.append(FieldViolation(f"{path}.event_name", "is required"))
    elif len(rule.event_name) > MAX_NAME_CHARS:
        violations.append(FieldViolation(
            f"{path}.event_name", f"must be at most {MAX_NAME_CHARS} characters"))
    if rule.operator == audiences_pb2.EVENT_RULE_OPERATOR_COUNT_GREATER_THAN and rule.count < 0:
        violations.append(FieldViolation(f"{path}.count", "must be 0 or more"))
    has_within = rule.HasField("within")
    within = _duration(rule.within, f"{path}.within", violations) if has_within else None
    if rule.operator in _WITHIN and (not has_within or within is not None) and \
            (within is None or within <= timedelta(0)):
        violations.append(FieldViolation(f"{path}.within", "must be a positive duration"))
    since = _timestamp(rule.since, f"{path}.since", violations) \
        if rule.HasField("since") else None
    before = _timestamp(rule.before, f"{path}.before", violations) \
        if rule.HasField("before") else None
    if since is not None and before is not None and since >= before:
        violations.append(FieldViolation(f"{path}.before", "must be after since"))
    if len(violations) > start:
        return None
    return EventCondition(rule.operator, rule.event_name, rule.count, within, since, before)


def _property_condition(rule: audiences_pb2.PropertyRule, path: str,
                        violations: list[FieldViolation]) -> PropertyCondition | None:
    start = len(violations)
    if rule.operator not in PropertyOp.values() or \
            rule.operator == audiences_pb2.PROPERTY_RULE_OPERATOR_UNSPECIFIED:
        violations.append(FieldViolation(f"{path}.operator", "is required"))
    if not rule.property:
        violations.append(FieldViolation(f"{path}.property", "is required"))
    value = _plain(rule.value) if rule.HasField("value") else None
    if rule.operator in _NEEDS_VALUE and value is None:
        violations.append(FieldViolation(f"{path}.value", "is required"))
    elif rule.operator in _NUMERIC and not _is_number(value):
        violations.append(FieldViolation(f"{path}.value", "must be a number"))
    elif rule.operator == audiences_pb2.PROPERTY_RULE_OPERATOR_CONTAINS and \
            isinstance(value, dict):
        violations.append(FieldViolation(f"{path}.value", "must not be an object"))
    has_within = rule.HasField("within")
    within = _duration(rule.within, f"{path}.within", violations) if has_within else None
    if rule.operator == audiences_pb2.PROPERTY_RULE_OPERATOR_DATE_WITHIN and \
            (not has_within or within is not None) and \
            (within is None or within <= timedelta(0)):
        violations.append(FieldViolation(f"{path}.within", "must be a positive duration"))
    before = _timestamp(rule.before, f"{path}.before", violations) \
        if rule.HasField("before") else None
    if rule.operator == audiences_pb2.PROPERTY_RULE_OPERATOR_DATE_BEFORE and \
            not rule.HasField("before"):
        violations.append(FieldViolation(f"{path}.before", "is required"))
    if len(violations) > start:
        return None
    return PropertyCondition(rule.operator, property_names(rule.property), value, within, before)


class Evaluator:
    """Evaluates parsed audiences for one project: from the audience index when it
    serves the project (``index``), else from the store; windowed event rules and
    property rules always read the store."""

    def __init__(self, queries: AudienceQueries, project_id: str,
                 index: IndexView | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._queries = queries
        self._project = project_id
        self._index = index
        self._now = now()
        self._roster_ids: set[str] | None = None  # read once per evaluation

    async def matching(self, groups: tuple[Group, ...],
                       universe: set[str] | None = None) -> set[str]:
        """External ids of the users (of ``universe``, or all) matching any group."""
        matched: set[str] = set()
        for group in groups:
            matched |= await self._group(group, universe)
        return matched

    async def _group(self, group: Group, universe: set[str] | None) -> set[str]:
        events = [c for c in group if isinstance(c, EventCondition)]
        properties = [c for c in group if isinstance(c, PropertyCondition)]
        if universe is not None and len(universe) <= IN_LOOKUP_LIMIT:
            survivors = await self._few(events, universe)
        else:
            # Each rule's query reads all of that event's occurrences either way (narrowing
            # by a long id list costs more than it saves), so they run at once, beside the
            # roster read: the database works on one while trackd decodes another.
            all_stats, roster = await asyncio.gather(
                asyncio.gather(*(self._stats(c, None) for c in events)), self._roster())
            # A new set: the roster is shared by every group of this evaluation.
            survivors = set(roster) if universe is None else universe & roster
            for condition, stats in zip(events, all_stats, strict=True):
                if condition.op in _POSITIVE:
                    survivors &= {user for user, s in stats.items()
                                  if condition.holds(s, self._now)}
                else:
                    survivors -= set(stats)
        if properties and survivors:
            fields = {name.split(".")[0] for c in properties for name in c.names}
            profiles = await self._queries.profiles(self._project, fields, survivors)
            survivors = {user for user, profile in profiles.items()
                         if all(c.holds(profile, self._now) for c in properties)}
        return survivors

    async def _few(self, events: list[EventCondition], universe: set[str]) -> set[str]:
        """The users of a small ``universe`` (one being matched) meeting the event rules:
        each query is narrowed to them, positive rules first."""
        candidates = universe & self._index.members if self._index is not None \
            else set(await self._queries.profiles(self._project, (), universe))
        for condition in sorted(events, key=lambda c: c.op not in _POSITIVE):
            if not candidates:
                break
            stats = await self._stats(condition, candidates)
            candidates = {user for user in candidates
                          if condition.holds(stats.get(user), self._now)}
        return candidates

    async def _roster(self) -> set[str]:
        if self._index is not None:
            return self._index.members
        if self._roster_ids is None:
            self._roster_ids = await self._queries.user_ids(self._project)
        return self._roster_ids

    async def _stats(self, condition: EventCondition,
                     users: set[str] | None) -> Mapping[str, EventStats]:
        if self._index is not None and condition.since is None and condition.before is None:
            stats = self._index.stats(condition.name)
            return stats if users is None else {user: stats[user] for user in users
                                                if user in stats}
        return await self._queries.event_stats(
            self._project, condition.name, since=condition.since, before=condition.before,
            users=users)
