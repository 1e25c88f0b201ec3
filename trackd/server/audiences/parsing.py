"""Audiences parsed from proto into conditions, with every invalid rule named by its path.

The limits (groups per audience, rules per group) live here; an invalid rule fails with
INVALID_ARGUMENT whose field path names it (``audience.groups[1].rules[0].event.operator``).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from google.protobuf import struct_pb2

from trackd.server.audiences.rules import (
    NEEDS_VALUE,
    NUMERIC,
    WITHIN,
    Condition,
    EventCondition,
    EventOp,
    Group,
    PropertyCondition,
    PropertyOp,
    is_number,
    property_names,
)
from trackd.server.errors import FieldViolation, InvalidArgument
from trackd.server.validation import checked_datetime
from trackd.v1 import audiences_pb2
from trackd.wire.limits import MAX_NAME_CHARS

MAX_GROUPS = 20
MAX_RULES_PER_GROUP = 20
# google.protobuf.Duration's range (10,000 years): beyond it the conversion to timedelta
# fails. Timestamps are read by trackd.server.validation.checked_datetime, as every request's are.
_MAX_DURATION_SECONDS = 315_576_000_000


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



def _duration(value: Any, path: str, violations: list[FieldViolation]) -> timedelta | None:
    """A Duration as a timedelta; None, with a violation, when out of Duration's range."""
    if abs(value.seconds) > _MAX_DURATION_SECONDS or abs(value.nanos) >= 10**9:
        violations.append(FieldViolation(path, "is out of range"))
        return None
    within: timedelta = value.ToTimedelta()
    return within


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


def _check_operator(operator: int, known: Collection[int], path: str,
                    violations: list[FieldViolation]) -> None:
    """A rule's operator: one of the enum's values other than ``UNSPECIFIED`` (0 in
    every proto3 enum)."""
    if operator not in known or operator == 0:
        violations.append(FieldViolation(f"{path}.operator", "is required"))


def _present(value: str, field: str, violations: list[FieldViolation]) -> bool:
    if not value:
        violations.append(FieldViolation(field, "is required"))
    return bool(value)


def _event_condition(rule: audiences_pb2.EventRule, path: str,
                     violations: list[FieldViolation]) -> EventCondition | None:
    start = len(violations)
    _check_operator(rule.operator, EventOp.values(), path, violations)
    if _present(rule.event_name, f"{path}.event_name", violations) and \
            len(rule.event_name) > MAX_NAME_CHARS:
        violations.append(FieldViolation(
            f"{path}.event_name", f"must be at most {MAX_NAME_CHARS} characters"))
    if rule.operator == audiences_pb2.EVENT_RULE_OPERATOR_COUNT_GREATER_THAN and rule.count < 0:
        violations.append(FieldViolation(f"{path}.count", "must be 0 or more"))
    has_within = rule.HasField("within")
    within = _duration(rule.within, f"{path}.within", violations) if has_within else None
    if rule.operator in WITHIN and (not has_within or within is not None) and \
            (within is None or within <= timedelta(0)):
        violations.append(FieldViolation(f"{path}.within", "must be a positive duration"))
    since = checked_datetime(rule.since, f"{path}.since", violations) \
        if rule.HasField("since") else None
    before = checked_datetime(rule.before, f"{path}.before", violations) \
        if rule.HasField("before") else None
    if since is not None and before is not None and since >= before:
        violations.append(FieldViolation(f"{path}.before", "must be after since"))
    if len(violations) > start:
        return None
    return EventCondition(rule.operator, rule.event_name, rule.count, within, since, before)


def _property_condition(rule: audiences_pb2.PropertyRule, path: str,
                        violations: list[FieldViolation]) -> PropertyCondition | None:
    start = len(violations)
    _check_operator(rule.operator, PropertyOp.values(), path, violations)
    _present(rule.property, f"{path}.property", violations)
    value = _plain(rule.value) if rule.HasField("value") else None
    if rule.operator in NEEDS_VALUE and value is None:
        violations.append(FieldViolation(f"{path}.value", "is required"))
    elif rule.operator in NUMERIC and not is_number(value):
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
    before = checked_datetime(rule.before, f"{path}.before", violations) \
        if rule.HasField("before") else None
    if rule.operator == audiences_pb2.PROPERTY_RULE_OPERATOR_DATE_BEFORE and \
            not rule.HasField("before"):
        violations.append(FieldViolation(f"{path}.before", "is required"))
    if len(violations) > start:
        return None
    return PropertyCondition(rule.operator, property_names(rule.property), value, within, before)
