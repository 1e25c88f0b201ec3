"""Tracking plan documents checked whole, and events judged, with the client's paths."""

from __future__ import annotations

from typing import Any

import pytest

from trackd.server.plans.rules import PlanError, Violation, blocked, check_plan, compile_plan, judge

SIGNUP: dict[str, Any] = {
    "type": "object", "required": ["plan"],
    "properties": {"plan": {"type": "string", "enum": ["trial", "pro", "enterprise"]},
                   "source": {"type": "string"},
                   "seats": {"type": "integer", "minimum": 1},
                   "email": {"type": "string", "format": "email"}},
    "additionalProperties": False}


def plan(**settings: Any) -> Any:
    return compile_plan(3, {**settings, "events": {"user_signed_up": {"properties": SIGNUP}}})


def test_a_valid_event_has_no_violation() -> None:
    assert judge(plan(), "user_signed_up", {"plan": "pro", "source": "ads"}) == []


@pytest.mark.parametrize(("properties", "expected"), [
    ({}, [Violation("missing_required", "properties.plan", "is required by the tracking plan")]),
    ({"plan": 2}, [Violation("wrong_type", "properties.plan", "must be of type string")]),
    ({"plan": "pro", "coupon": "x"},
     [Violation("unexpected_property", "properties.coupon",
                "is not a property the tracking plan allows")]),
    ({"plan": "free"}, [Violation("invalid_value", "properties.plan",
                                  'is invalid: "free" is not one of "trial", "pro" or '
                                  '"enterprise"')]),
    ({"plan": "pro", "seats": 0},
     [Violation("invalid_value", "properties.seats",
                "is invalid: 0 is less than the minimum of 1")]),
    ({"plan": "pro", "email": "nope"},
     [Violation("invalid_value", "properties.email", 'is invalid: "nope" is not a "email"')]),
])
def test_each_kind_names_the_clients_field(properties: dict[str, Any],
                                           expected: list[Violation]) -> None:
    assert judge(plan(), "user_signed_up", properties) == expected


def test_nested_paths_are_the_clients() -> None:
    nested = compile_plan(1, {"events": {"order": {"properties": {
        "type": "object", "properties": {"items": {"type": "array", "items": {
            "type": "object", "properties": {"sku": {"type": "string"}}}}}}}}})
    assert judge(nested, "order", {"items": [{"sku": "a"}, {"sku": 7}]}) == [
        Violation("wrong_type", "properties.items[1].sku", "must be of type string")]


def test_unplanned_events_allow_flag_block() -> None:
    assert judge(plan(), "signup", {}) == []
    flagged = judge(plan(unplanned_events="flag"), "signup", {})
    assert flagged == [Violation("unplanned_event", "name",
                                 "'signup' is not in the tracking plan")]
    assert not blocked(plan(unplanned_events="flag", enforcement="block"), flagged)
    assert blocked(plan(unplanned_events="block"), flagged)
    wrong = judge(plan(), "user_signed_up", {})
    assert not blocked(plan(), wrong)
    assert blocked(plan(enforcement="block"), wrong)


@pytest.mark.parametrize(("document", "error"), [
    ({"events": {"user_signed_up": {"properties": {"type": "objectx"}}}},
     "events.user_signed_up.properties.type"),
    ({"events": {"a": {"properties": {"properties": {"b": {"minimum": "x"}}}}}},
     "events.a.properties.properties.b.minimum"),
    ({"events": {"a": {"properties": {"type": "string", "pattern": "("}}}},
     "events.a.properties.pattern"),
    ({"events": {"a": {"properties": 3}}}, "events.a.properties"),
    ({"events": {"a": {"schema": {}}}}, "events.a.schema"),
    ({"enforcement": "strict"}, "enforcement"),
    ({"unplanned_events": "drop"}, "unplanned_events"),
    ({"events": []}, "events"),
    ({"mode": "block"}, "mode"),
    ([1], ""),
])
def test_an_invalid_plan_is_one_error_naming_its_path(document: Any, error: str) -> None:
    with pytest.raises(PlanError) as caught:
        check_plan(document)
    assert caught.value.path == error


def test_defaults_are_filled_in() -> None:
    assert check_plan({}) == {"enforcement": "observe", "unplanned_events": "allow",
                              "events": {}}
