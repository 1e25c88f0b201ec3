"""VibeFollow: ``/api/v1/events``, ``/api/v1/events/batch``, ``/api/v1/users`` and
``/api/v1/users/bulk`` (docs/dialects/vibefollow.md).

Success is 202 ``{"data":{"accepted":true}}``; every failure is
``{"errors":[{"code","message","field"}]}`` with 400 for a body that is not JSON, 422 for
one that fails validation (``field`` indexed in a batch: ``events[3].external_user_id``),
401, 403, 413, 429 and 503 with ``Retry-After``. The ``Idempotency-Key`` header is the
RPC's idempotency_key. Users/bulk answers 200 with per-record results.

Rules only VibeFollow has live here as data: the canonical events' required properties
and the trait keys that are first-class profile fields.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import (
    Any,
    NotRequired,  # pydantic needs these on 3.11
)

import grpc
from aiohttp import web
from google.protobuf.message import Message
from pydantic import ValidationError, with_config
from typing_extensions import TypedDict

from trackd.gateway.body import describe, field_path
from trackd.gateway.convert import (
    DEPTH_USER_TRAITS,
    UnencodableValue,
    fill_struct,
    properties_json,
    timestamp,
)
from trackd.gateway.decoding import STRICT_BODY, BodySchema, NonEmpty
from trackd.gateway.dialects.base import (
    Dialect,
    bearer_metadata,
    call,
    json_response,
    retry_headers,
)
from trackd.gateway.grpc_errors import Problem, ProblemError
from trackd.gateway.settings import TRACKING, USERS
from trackd.v1 import tracking_pb2, users_pb2
from trackd.wire.keys import snake_case


@with_config(STRICT_BODY)
class VibeFollowEvent(TypedDict):
    """One event, as the single-event body and as each item of a batch."""

    external_user_id: NonEmpty
    name: NonEmpty
    properties: NotRequired[dict[str, Any] | None]
    # Beyond the vendor page: an explicit occurrence id (dedup) and time.
    event_id: NotRequired[str]
    timestamp: NotRequired[datetime]


@with_config(STRICT_BODY)
class VibeFollowBatch(TypedDict):
    events: list[VibeFollowEvent]


EVENT = BodySchema(VibeFollowEvent)
BATCH = BodySchema(VibeFollowBatch)

ACCEPTED = {"data": {"accepted": True}}
# The requests VibeFollow's routes send, each with the Idempotency-Key header's key.
AcceptedRequest = (tracking_pb2.TrackEventRequest | tracking_pb2.BatchTrackRequest
                   | users_pb2.UpsertUserRequest)


def _field_name(path: str) -> str:
    if path == "idempotency_key":
        return "Idempotency-Key"
    if path.startswith("user."):
        return _user_field_name(path.removeprefix("user."))
    return path.removeprefix("event.")


def _render(problem: Problem) -> web.Response:
    error: dict[str, str] = {"code": problem.code, "message": problem.message}
    if problem.field:
        error["field"] = problem.field
    return json_response({"errors": [error]}, problem.status, retry_headers(problem))


VIBEFOLLOW = Dialect(
    name="vibefollow",
    render=_render,
    status_overrides={grpc.StatusCode.INVALID_ARGUMENT: 422},
    field_name=_field_name,
)


def _idempotency_key(request: web.Request) -> str:
    """The ``Idempotency-Key`` header; bytes that are not UTF-8 are refused, not sent on
    (the server checks the rest: length, printable characters), and so is a header sent
    empty (the server would read it as no key: a client meaning one must hear it is not)."""
    key = request.headers.get("Idempotency-Key", "")
    if not key and "Idempotency-Key" in request.headers:
        raise _invalid("Idempotency-Key", "must not be empty")
    try:
        key.encode()
    except UnicodeEncodeError as exc:  # aiohttp keeps undecodable bytes as surrogates
        raise _invalid("Idempotency-Key", "must be printable UTF-8 text") from exc
    return key


def _event(item: VibeFollowEvent, path: str) -> tracking_pb2.Event:
    _check_canonical(item, path)
    event = tracking_pb2.Event(
        name=item["name"],
        external_user_id=item["external_user_id"],
        event_id=item.get("event_id", ""),
    )
    if "timestamp" in item:
        event.timestamp.CopyFrom(timestamp(item["timestamp"], f"{path}timestamp"))
    properties = item.get("properties")
    if properties is not None:
        event.properties_json = properties_json(properties, f"{path}properties")
    return event


async def _accept(request: web.Request, method: Callable[..., Awaitable[Message]],
                  message: AcceptedRequest, metadata: list[tuple[str, str]]) -> web.Response:
    """Send ``message`` (converted from the body) with the request's ``Idempotency-Key``
    (checked after the body, as before) and answer VibeFollow's 202."""
    message.idempotency_key = _idempotency_key(request)
    await call(request, method, message, metadata)
    return json_response(ACCEPTED, 202)


@VIBEFOLLOW.handler
async def track_event(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/events: one event for a user."""
    metadata = bearer_metadata(request)
    item = await VIBEFOLLOW.body(request, EVENT)
    message = tracking_pb2.TrackEventRequest(event=_event(item, ""))
    return await _accept(request, request.app[TRACKING].TrackEvent, message, metadata)


@VIBEFOLLOW.handler
async def batch_track(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/events/batch: 1 to 500 events, all or nothing."""
    metadata = bearer_metadata(request)
    batch = await VIBEFOLLOW.body(request, BATCH)
    message = tracking_pb2.BatchTrackRequest(
        events=[_event(item, f"events[{i}].") for i, item in enumerate(batch["events"])])
    return await _accept(request, request.app[TRACKING].BatchTrack, message, metadata)


# --- canonical lifecycle events ------------------------------------------------------

# The canonical events that require a property, and which (presence only; camelCase and
# snake_case spellings of a key are the same property).
CANONICAL_REQUIRED_PROPERTIES: Mapping[str, str] = {
    "feature_used": "feature",
    "onboarding_step": "step",
    "subscription_changed": "to",
    "trial_expiring": "daysLeft",
    "user_invited": "invitedEmail",
}

_invalid = VIBEFOLLOW.invalid


def _check_canonical(item: VibeFollowEvent, path: str) -> None:
    """A canonical event must carry its required property (a null value is absent)."""
    required = CANONICAL_REQUIRED_PROPERTIES.get(item["name"])
    if required is None:
        return
    present = {snake_case(key) for key, value in (item.get("properties") or {}).items()
               if value is not None}
    if snake_case(required) not in present:
        raise _invalid(f"{path}properties.{required}", f"is required for {item['name']} events")


# --- users -----------------------------------------------------------------------------


@with_config(STRICT_BODY)
class VibeFollowUser(TypedDict):
    """The users body, and each record of a users/bulk body."""

    external_user_id: NonEmpty
    email: NotRequired[str | None]
    traits: NotRequired[dict[str, Any] | None]


@with_config(STRICT_BODY)
class VibeFollowUsers(TypedDict):
    users: list[Any]


USER = BodySchema(VibeFollowUser)
USERS_BULK = BodySchema(VibeFollowUsers)

# Trait keys that are first-class profile fields -> the User field each fills; the other
# traits are kept as free-form traits. Either spelling (signupDate, signup_date) counts.
KNOWN_TRAITS: Mapping[str, str] = {
    "name": "name",
    "plan": "plan",
    "company": "company",
    "role": "role",
    "signupDate": "signed_up_at",
}
_KNOWN_TRAIT_SPELLINGS = {snake_case(key): field for key, field in KNOWN_TRAITS.items()}
# A User's proto paths -> the names in VibeFollow's body.
USER_FIELD_NAMES: Mapping[str, str] = {
    "external_id": "external_user_id",
    "emails": "email",
    **{field: f"traits.{key}" for key, field in KNOWN_TRAITS.items()},
}
# users/bulk: the server's per-record codes -> VibeFollow's.
RECORD_ERROR_CODES: Mapping[str, str] = {
    "invalid_argument": "validation_failed",
    "internal": "internal_error",
}
_INDEX = re.compile(r"\[\d+\]$")


def _user_field_name(path: str) -> str:
    """A path within a User (``external_id``, ``emails[0]``) -> the body's name."""
    head, sep, rest = path.partition(".")
    return USER_FIELD_NAMES.get(_INDEX.sub("", head), head) + sep + rest


def _signup_date(value: Any, path: str) -> datetime:
    """An ISO-8601 date or date-time; without an offset it is UTC."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise _invalid(path, "must be an ISO-8601 date or date-time")


def _user(item: VibeFollowUser) -> users_pb2.User:
    user = users_pb2.User(external_id=item["external_user_id"])
    if "email" in item:
        user.email = item["email"] or ""  # null clears it
    free: dict[str, Any] = {}
    for key, value in (item.get("traits") or {}).items():
        field = _KNOWN_TRAIT_SPELLINGS.get(snake_case(key))
        if field is None:
            free[key] = value
        elif field == "signed_up_at":
            user.signed_up_at.CopyFrom(timestamp(_signup_date(value, f"traits.{key}"),
                                                  f"traits.{key}"))
        elif value is None or isinstance(value, str):
            setattr(user, field, value or "")  # null or "" clears it
        else:
            raise _invalid(f"traits.{key}", "must be a string")
    if free:
        fill_struct(user.traits, free, "traits", DEPTH_USER_TRAITS)
    return user


def _record(record: Any) -> users_pb2.User:
    """One users/bulk record; a ProblemError names what is wrong with it."""
    try:
        item = USER.validate_python(record)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        path = field_path(first["loc"])
        if not path:
            raise _invalid("record", describe(first)) from exc
        raise _invalid(path, describe(first)) from exc
    try:
        return _user(item)
    except UnencodableValue as exc:  # reported per record, like any invalid field
        raise ProblemError(VIBEFOLLOW.unencodable(exc)) from exc


def _record_error(index: int, code: str, message: str, field: str) -> dict[str, Any]:
    error: dict[str, Any] = {"index": index, "code": code, "message": message}
    if field:
        error["field"] = field
    return error


@VIBEFOLLOW.handler
async def upsert_user(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/users: create or update one user in place."""
    metadata = bearer_metadata(request)
    item = await VIBEFOLLOW.body(request, USER)
    message = users_pb2.UpsertUserRequest(user=_user(item))
    return await _accept(request, request.app[USERS].UpsertUser, message, metadata)


@VIBEFOLLOW.handler
async def bulk_upsert_users(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/users/bulk: 1 to 1000 users; valid ones stored, the rest reported."""
    metadata = bearer_metadata(request)
    body = await VIBEFOLLOW.body(request, USERS_BULK)
    users: list[users_pb2.User] = []
    errors: dict[int, dict[str, Any]] = {}
    for index, record in enumerate(body["users"]):
        try:
            users.append(_record(record))
        except ProblemError as exc:
            # An empty User, which the server rejects too, keeps the indices aligned.
            users.append(users_pb2.User())
            errors[index] = _record_error(index, "validation_failed", exc.problem.message,
                                          "" if exc.problem.field == "record"
                                          else exc.problem.field)
    response = await call(request, request.app[USERS].BatchUpsertUsers,
                          users_pb2.BatchUpsertUsersRequest(
                              users=users,
                              idempotency_key=_idempotency_key(request)),
                          metadata)
    for error in response.errors:
        if error.index in errors:
            continue
        field = _user_field_name(error.field) if error.field else ""
        # The server's message names the proto path; the body's name replaces it.
        text = f"{field} {error.description}" if field and error.description else error.message
        errors[error.index] = _record_error(
            error.index, RECORD_ERROR_CODES.get(error.code, error.code), text, field)
    return json_response({
        "data": {"accepted": len(users) - len(errors), "rejected": len(errors),
                 "errors": [errors[index] for index in sorted(errors)]},
        "meta": {"received": len(users)},
    })


def add_routes(app: web.Application) -> None:
    # POST /api/v1/events is shared with Cueflow: trackd.gateway.dialects.shared_paths owns the
    # route and hands VibeFollow-shaped bodies to track_event.
    app.router.add_post("/api/v1/events/batch", batch_track)
    app.router.add_post("/api/v1/users", upsert_user)
    app.router.add_post("/api/v1/users/bulk", bulk_upsert_users)
