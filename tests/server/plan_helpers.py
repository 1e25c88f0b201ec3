"""What the tracking plan tests share: a plan, and setting it as the CLI does."""

from __future__ import annotations

import copy
from typing import Any

from trackd.server.plans import manage
from trackd.storage import Store

SIGNUP_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["plan"],
    "properties": {"plan": {"type": "string", "enum": ["trial", "pro", "enterprise"]},
                   "source": {"type": "string"},
                   "seats": {"type": "integer", "minimum": 1}},
    "additionalProperties": False}

# Each kind, as the properties of a user_signed_up event, with the violation it makes
# (field relative to the event).
KINDS: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "missing_required": ("user_signed_up", {"source": "ads"}, "properties.plan",
                         "is required by the tracking plan"),
    "wrong_type": ("user_signed_up", {"plan": 2}, "properties.plan",
                   "must be of type string"),
    "unexpected_property": ("user_signed_up", {"plan": "pro", "coupon": "x"},
                            "properties.coupon", "is not a property the tracking plan allows"),
    "invalid_value": ("user_signed_up", {"plan": "free"}, "properties.plan",
                      'is invalid: "free" is not one of "trial", "pro" or "enterprise"'),
    "unplanned_event": ("signup", {"plan": "pro"}, "name",
                        "'signup' is not in the tracking plan"),
}


def plan_document(enforcement: str = "observe", unplanned: str = "flag",
                  events: int = 1) -> dict[str, Any]:
    document: dict[str, Any] = {"enforcement": enforcement, "unplanned_events": unplanned,
                                "events": {"user_signed_up": {
                                    "properties": copy.deepcopy(SIGNUP_SCHEMA)}}}
    for i in range(1, events):
        document["events"][f"event_{i}"] = {"properties": {"type": "object"}}
    return document


async def set_plan(store: Store, project: str = "acme", **settings: Any) -> int:
    return (await manage.set_plan(store, project, plan_document(**settings))).version
