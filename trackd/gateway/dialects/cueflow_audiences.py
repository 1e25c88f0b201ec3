"""Cueflow-style audience routes: behavioural targeting over every stored event.

=============================================  ============================================
POST /api/v1/audiences/evaluate                the contacts in an audience, a page at a
                                               time (AudienceService.EvaluateAudience)
POST /api/v1/contacts/{externalId}/match       whether one contact is in it now
                                               (AudienceService.MatchUser)
=============================================  ============================================

An audience is ``{"groups": [{"rules": [rule, ...]}, ...]}``: the rules of a group are
ANDed, the groups ORed. A rule is an event rule::

    {"event": "advanced_export_used", "op": "has_done" | "has_not_done" |
     "count_greater_than" | "first_done_within" | "last_done_within",
     "count": 10, "within": "7d", "since": "<ISO-8601>", "before": "<ISO-8601>"}

or a property rule over a contact's fields and custom attributes (camelCase and
snake_case spellings are the same property)::

    {"property": "plan", "op": "equals" | "not_equals" | "is_set" | "is_not_set" |
     "contains" | "greater_than" | "less_than" | "date_within" | "date_before",
     "value": ..., "within": "30d", "before": "<ISO-8601>"}

Durations are whole numbers of weeks, days, hours, minutes or seconds, combinable:
``7d``, ``24h``, ``1d12h``. Evaluation takes ``limit`` (1-1000, default 100) and ``cursor``
and answers ``{"data": {"externalIds": [...], "total": N, "nextCursor": "..." | null}}``;
a match answers ``{"data": {"externalId": "...", "matches": true | false}}``, and 404
``Contact not found`` for an unknown contact. Errors are Cueflow's ``{"error": ...}``,
naming the rule: ``Invalid request body: groups[1].rules[0].op is required``.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import (
    Any,
    NotRequired,  # pydantic needs these on 3.11
)

from aiohttp import web
from google.protobuf import duration_pb2, struct_pb2
from pydantic import with_config
from typing_extensions import TypedDict

from trackd.gateway.convert import DEPTH_RULE_VALUE, fill_struct, timestamp
from trackd.gateway.decoding import STRICT_BODY, BodySchema
from trackd.gateway.dialects.base import bearer_metadata, call, json_response
from trackd.gateway.dialects.cueflow import CUEFLOW
from trackd.gateway.grpc_errors import Problem, ProblemError
from trackd.gateway.settings import AUDIENCES
from trackd.v1 import audiences_pb2

EVENT_OPS = {
    "has_done": audiences_pb2.EVENT_RULE_OPERATOR_HAS_DONE,
    "has_not_done": audiences_pb2.EVENT_RULE_OPERATOR_HAS_NOT_DONE,
    "count_greater_than": audiences_pb2.EVENT_RULE_OPERATOR_COUNT_GREATER_THAN,
    "first_done_within": audiences_pb2.EVENT_RULE_OPERATOR_FIRST_DONE_WITHIN,
    "last_done_within": audiences_pb2.EVENT_RULE_OPERATOR_LAST_DONE_WITHIN,
}
PROPERTY_OPS = {
    "equals": audiences_pb2.PROPERTY_RULE_OPERATOR_EQUALS,
    "not_equals": audiences_pb2.PROPERTY_RULE_OPERATOR_NOT_EQUALS,
    "is_set": audiences_pb2.PROPERTY_RULE_OPERATOR_IS_SET,
    "is_not_set": audiences_pb2.PROPERTY_RULE_OPERATOR_IS_NOT_SET,
    "contains": audiences_pb2.PROPERTY_RULE_OPERATOR_CONTAINS,
    "greater_than": audiences_pb2.PROPERTY_RULE_OPERATOR_GREATER_THAN,
    "less_than": audiences_pb2.PROPERTY_RULE_OPERATOR_LESS_THAN,
    "date_within": audiences_pb2.PROPERTY_RULE_OPERATOR_DATE_WITHIN,
    "date_before": audiences_pb2.PROPERTY_RULE_OPERATOR_DATE_BEFORE,
}
# A duration's syntax; and the durations accepted (the OpenAPI document states this
# pattern): positive (some digit is not 0), each part short enough that the sum stays
# within the server's bound of 10,000 years.
_DURATION_SYNTAX = re.compile(r"^(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?"
                              r"(?:([0-9]+)s)?\Z")
_DURATION = re.compile(r"^(?=[^1-9]*[1-9])(?:[0-9]{1,5}w)?(?:[0-9]{1,6}d)?(?:[0-9]{1,7}h)?"
                       r"(?:[0-9]{1,8}m)?(?:[0-9]{1,10}s)?$")
# The server's rule paths in this API's spelling.
_PATHS = (
    (re.compile(r"^audience\."), ""),
    (re.compile(r"\.(event|property)\.operator"), ".op"),
    (re.compile(r"\.event\.event_name"), ".event"),
    (re.compile(r"\.property\.property"), ".property"),
    (re.compile(r"\.(event|property)\.(\w+)"), r".\2"),
    (re.compile(r"^page_size$"), "limit"),
    (re.compile(r"^page_token$"), "cursor"),
    (re.compile(r"^external_id$"), "externalId"),
)


def _field_name(path: str) -> str:
    for pattern, replacement in _PATHS:
        path = pattern.sub(replacement, path)
    return path


AUDIENCE_API = dataclasses.replace(CUEFLOW, field_name=_field_name)
# The most contacts one evaluation answers with (the server's page size bound too).
MAX_LIMIT = 1000


@with_config(STRICT_BODY)
class RuleBody(TypedDict):
    event: NotRequired[str]
    property: NotRequired[str]
    op: str
    count: NotRequired[int]
    within: NotRequired[str]
    since: NotRequired[datetime]
    before: NotRequired[datetime]
    value: NotRequired[Any]


@with_config(STRICT_BODY)
class GroupBody(TypedDict):
    rules: list[RuleBody]


@with_config(STRICT_BODY)
class AudienceBody(TypedDict):
    groups: list[GroupBody]


@with_config(STRICT_BODY)
class EvaluateBody(AudienceBody):
    limit: NotRequired[int]
    cursor: NotRequired[str | None]


EVALUATE = BodySchema(EvaluateBody)
AUDIENCE = BodySchema(AudienceBody)


_invalid = AUDIENCE_API.invalid


def parse_duration(text: str, field: str) -> duration_pb2.Duration:
    match = _DURATION_SYNTAX.match(text)
    if not text or not match:
        raise _invalid(field, "must be a duration such as 7d, 24h or 1d12h")
    weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    if not any((weeks, days, hours, minutes, seconds)):
        raise _invalid(field, "must be a positive duration")
    if not _DURATION.match(text):
        raise _invalid(field, "is out of range")
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes,
                                     seconds=seconds))
    return duration


def _rule(body: RuleBody, path: str) -> audiences_pb2.Rule:
    rule = audiences_pb2.Rule()
    if "event" in body and "property" in body:
        raise _invalid(path, "must name an event or a property, not both")
    if "event" in body:
        event = rule.event
        event.event_name = body["event"]
        event.operator = EVENT_OPS.get(body["op"], audiences_pb2.EVENT_RULE_OPERATOR_UNSPECIFIED)
        if event.operator == audiences_pb2.EVENT_RULE_OPERATOR_UNSPECIFIED:
            raise _invalid(f"{path}.op", f"must be one of {', '.join(EVENT_OPS)}")
        if "count" in body:
            if not -2**63 <= body["count"] < 2**63:  # int64
                raise _invalid(f"{path}.count", "is out of range")
            if body["count"] < 0:  # for any operator, as the document says
                raise _invalid(f"{path}.count", "must be 0 or more")
            event.count = body["count"]
        if "since" in body:
            event.since.CopyFrom(timestamp(body["since"], f"{path}.since"))
        if "before" in body:
            event.before.CopyFrom(timestamp(body["before"], f"{path}.before"))
        if "within" in body:
            event.within.CopyFrom(parse_duration(body["within"], f"{path}.within"))
        return rule
    if "property" in body:
        prop = rule.property
        prop.property = body["property"]
        prop.operator = PROPERTY_OPS.get(body["op"],
                                         audiences_pb2.PROPERTY_RULE_OPERATOR_UNSPECIFIED)
        if prop.operator == audiences_pb2.PROPERTY_RULE_OPERATOR_UNSPECIFIED:
            raise _invalid(f"{path}.op", f"must be one of {', '.join(PROPERTY_OPS)}")
        if body.get("value") is not None:
            holder = struct_pb2.Struct()
            fill_struct(holder, {"value": body["value"]}, path, DEPTH_RULE_VALUE)
            prop.value.CopyFrom(holder.fields["value"])
        if "before" in body:
            prop.before.CopyFrom(timestamp(body["before"], f"{path}.before"))
        if "within" in body:
            prop.within.CopyFrom(parse_duration(body["within"], f"{path}.within"))
        return rule
    raise _invalid(path, "must name an event or a property")


def _audience(body: AudienceBody) -> audiences_pb2.Audience:
    audience = audiences_pb2.Audience()
    for g, group in enumerate(body["groups"]):
        rules = audience.groups.add().rules
        for r, rule in enumerate(group["rules"]):
            rules.append(_rule(rule, f"groups[{g}].rules[{r}]"))
    return audience



@AUDIENCE_API.handler
async def evaluate(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/audiences/evaluate."""
    metadata = bearer_metadata(request)
    body = await AUDIENCE_API.body(request, EVALUATE)
    if "limit" in body and not 1 <= body["limit"] <= MAX_LIMIT:
        raise _invalid("limit", f"must be 1 to {MAX_LIMIT}")
    message = audiences_pb2.EvaluateAudienceRequest(
        page_size=body.get("limit", 0), page_token=body.get("cursor") or "")
    message.audience.CopyFrom(_audience(body))
    response = await call(request, request.app[AUDIENCES].EvaluateAudience, message, metadata)
    return json_response({"data": {
        "externalIds": list(response.external_ids),
        "total": response.total_count,
        "nextCursor": response.next_page_token or None,
    }})


@AUDIENCE_API.handler
async def match(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/contacts/{externalId}/match."""
    metadata = bearer_metadata(request)
    body = await AUDIENCE_API.body(request, AUDIENCE)
    external_id = request.match_info["external_id"]
    message = audiences_pb2.MatchUserRequest(external_id=external_id)
    message.audience.CopyFrom(_audience(body))
    response = await call(request, request.app[AUDIENCES].MatchUser, message, metadata)
    if not response.user_exists:
        raise ProblemError(Problem(404, "Contact not found", reason="USER_NOT_FOUND"))
    return json_response({"data": {"externalId": external_id, "matches": response.matches}})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/audiences/evaluate", evaluate)
    app.router.add_post("/api/v1/contacts/{external_id}/match", match)
