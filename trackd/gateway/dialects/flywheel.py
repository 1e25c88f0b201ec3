"""Flywheel: ``POST /v1/events`` (docs/dialects/flywheel.md).

The body is ``{"event": {event, user_id?, anonymous_id?, timestamp?, event_id?,
properties?, identify?}}``; success is 200 ``{"success":true,"message":"Event tracked
successfully"}``. Every failure is ``{"error": "...", "code": "UPPER_CASE"}``: 400
``Validation failed: <field> <what is wrong>`` with code ``VALIDATION_ERROR``, 401
``UNAUTHORIZED``, 403, 413, 429 and 503 (with ``Retry-After``), 500 ``INTERNAL_ERROR``.

Auth is ``Authorization: <key>`` -- the key itself, no ``Bearer `` prefix; a prefixed
value is refused with 401 rather than guessed at -- plus ``Auth-Type: api``. The key is
forwarded as ``authorization: Bearer <key>`` metadata; the server decides if it is valid.

Rules only Flywheel has live here, as data: the event-name pattern, flat property values,
and which properties ``identify: true`` turns into profile fields. An event without a
``user_id`` is anonymous, keyed by its ``anonymous_id`` (generated when absent too).
With ``identify: true`` the event is first validated by the server (``validate_only``),
then the profile is upserted, then the event is stored -- so a request that fails
validation changes nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any, NotRequired  # pydantic needs typing_extensions.TypedDict on 3.11

from aiohttp import web
from pydantic import AwareDatetime, with_config
from typing_extensions import TypedDict

from trackd.gateway.convert import properties_json, timestamp
from trackd.gateway.decoding import STRICT_BODY, BodySchema
from trackd.gateway.dialects.base import Dialect, call, json_response, retry_headers
from trackd.gateway.grpc_errors import Problem, ProblemError
from trackd.gateway.settings import TRACKING, USERS
from trackd.v1 import tracking_pb2, users_pb2

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")
AUTH_TYPE = "api"

# identify: true -- event property -> the User field it fills. `emails`/`phones` add to
# the user's sets (the first one seen becomes the primary); `email`/`phone` set the
# primary explicitly; `name` (from full_name) is also split into first and last name.
PROFILE_PROPERTIES: Mapping[str, str] = {
    "email": "emails",
    "primary_email": "email",
    "phone": "phones",
    "primary_phone": "phone",
    "first_name": "first_name",
    "last_name": "last_name",
    "full_name": "name",
    "company": "company",
    "stripe_customer_id": "stripe_customer_id",
}
# Profile properties that may also be sent as a JSON number.
NUMERIC_PROFILE_PROPERTIES = frozenset({"phone", "primary_phone"})

# Paths (the body's, and the server's proto paths) -> the names a Flywheel user knows.
FIELD_NAMES: Mapping[str, str] = {
    "event.event": "event name",
    "event.name": "event name",
    "event.external_user_id": "user_id",
    "user.external_id": "user_id",
    "user.anonymous_ids": "anonymous_id",
    "user.emails": "properties.email",
    "user.email": "properties.primary_email",
    "user.phones": "properties.phone",
    "user.phone": "properties.primary_phone",
    "user.name": "properties.full_name",
}

# HTTP status -> Flywheel's error code; other statuses use the upper-cased snake code.
ERROR_CODES: Mapping[int, str] = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

SUCCESS = {"success": True, "message": "Event tracked successfully"}
FLAT_VALUE = "must be a string, boolean, number or ISO-8601 date-time"



@with_config(STRICT_BODY)
class FlywheelEvent(TypedDict):
    """The ``event`` object (the seed's PostEventRequest)."""

    event: str
    user_id: NotRequired[str | None]
    anonymous_id: NotRequired[str | None]
    timestamp: NotRequired[AwareDatetime | None]
    event_id: NotRequired[str | None]
    properties: NotRequired[dict[str, Any] | None]
    identify: NotRequired[bool | None]


@with_config(STRICT_BODY)
class FlywheelBody(TypedDict):
    event: FlywheelEvent


BODY = BodySchema(FlywheelBody)


def _field_name(path: str) -> str:
    """``event.properties.plan`` -> ``properties.plan``; ``user.emails[0]`` ->
    ``properties.email``; ``event.event`` and ``event.name`` -> ``event name``."""
    base = re.sub(r"\[\d+\]$", "", path)
    if base in FIELD_NAMES:
        return FIELD_NAMES[base]
    head, _, rest = path.partition(".")
    if head == "event" and rest:
        return rest
    if head == "user" and rest:
        return f"properties.{rest}"
    return path


def _render(problem: Problem) -> web.Response:
    code = ERROR_CODES.get(problem.status) or problem.code.upper()
    message = problem.message
    if problem.status == 400:
        message = f"Validation failed: {message}"
    return json_response({"error": message, "code": code}, problem.status,
                         retry_headers(problem))


def _credential(request: web.Request) -> str:
    """The ``Authorization`` header: the API key itself."""
    return request.headers.get("Authorization", "").strip()


FLYWHEEL = Dialect(
    name="flywheel",
    render=_render,
    field_name=_field_name,
)


_invalid = FLYWHEEL.invalid


def _unauthorized(message: str) -> ProblemError:
    return ProblemError(Problem(401, message, reason="API_KEY_MISSING"))


def _auth_metadata(request: web.Request) -> list[tuple[str, str]]:
    """The key as call metadata; only the headers' presence and form are checked here."""
    key = _credential(request)
    if not key:
        raise _unauthorized("missing Authorization header: send the API key itself")
    if key.partition(" ")[0].lower() == "bearer":
        raise _unauthorized(
            "Authorization must be the API key itself, without a 'Bearer ' prefix")
    if request.headers.get("Auth-Type", "").strip().lower() != AUTH_TYPE:
        raise _unauthorized(f"Auth-Type header must be '{AUTH_TYPE}'")
    return [("authorization", f"Bearer {key}")]


async def _parse(request: web.Request) -> FlywheelEvent:
    """The body's ``event``; a field that fails the schema is named as Flywheel names it."""
    try:
        return (await FLYWHEEL.body(request, BODY))["event"]
    except ProblemError as exc:
        problem = exc.problem
        if not problem.field:
            raise
        raise ProblemError(problem.renamed(_field_name(problem.field))) from exc


def _event(item: FlywheelEvent) -> tracking_pb2.Event:
    name = item["event"]
    if not name:
        raise _invalid("event name", "is required")
    if not NAME_PATTERN.match(name):
        raise _invalid("event name", f"must match {NAME_PATTERN.pattern}")
    user_id = item.get("user_id") or ""
    anonymous_id = item.get("anonymous_id") or ""
    if not user_id and not anonymous_id:
        anonymous_id = str(uuid.uuid4())
    event = tracking_pb2.Event(name=name, external_user_id=user_id, anonymous_id=anonymous_id,
                               event_id=item.get("event_id") or "")
    when = item.get("timestamp")
    if when is not None:
        event.timestamp.CopyFrom(timestamp(when, "timestamp"))
    properties = item.get("properties") or {}
    for key, value in properties.items():
        if value is None or isinstance(value, dict | list):
            raise _invalid(f"properties.{key}",
                           f"{FLAT_VALUE} (nested objects and arrays are not allowed)")
    if properties:
        event.properties_json = properties_json(properties, "properties")
    return event


def _profile(item: FlywheelEvent, event: tracking_pb2.Event) -> users_pb2.User:
    """The profile fields ``identify: true`` takes from the event's properties."""
    if not event.external_user_id:
        raise _invalid("user_id", "is required when identify is true")
    user = users_pb2.User(external_id=event.external_user_id)
    if item.get("anonymous_id"):
        user.anonymous_ids.append(event.anonymous_id)
    properties = item.get("properties") or {}
    for prop, field in PROFILE_PROPERTIES.items():
        value = properties.get(prop)
        if value is None:
            continue
        if prop in NUMERIC_PROFILE_PROPERTIES and isinstance(value, int) \
                and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _invalid(f"properties.{prop}", "must be a string when identify is true")
        value = value.strip()
        if not value:
            continue
        if field in ("emails", "phones"):
            getattr(user, field).append(value)
        else:
            setattr(user, field, value)
    if user.HasField("name"):
        first, *rest = user.name.split(maxsplit=1)
        if not user.HasField("first_name"):
            user.first_name = first
        if rest and not user.HasField("last_name"):
            user.last_name = rest[0]
    return user


@FLYWHEEL.handler
async def track_event(request: web.Request) -> web.StreamResponse:
    """POST /v1/events: one event; with ``identify: true`` the profile is upserted first."""
    metadata = _auth_metadata(request)
    item = await _parse(request)
    event = _event(item)
    tracking = request.app[TRACKING]
    if item.get("identify"):
        user = _profile(item, event)
        await call(request, tracking.TrackEvent,
                   tracking_pb2.TrackEventRequest(event=event, validate_only=True), metadata)
        await call(request, request.app[USERS].UpsertUser,
                   users_pb2.UpsertUserRequest(user=user), metadata)
    await call(request, tracking.TrackEvent, tracking_pb2.TrackEventRequest(event=event),
               metadata)
    return json_response(SUCCESS)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/events", track_event)
