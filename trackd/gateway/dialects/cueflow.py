"""Cueflow: contacts and events (docs/dialects/cueflow.md).

Routes (``Authorization: Bearer <key>``; 100 requests per minute per key by default):

=====================================  =====================================================
POST   /api/v1/contacts                upsert (UserService.UpsertUser): 201 created,
                                       200 updated; ``externalId`` defaults to ``email``
GET    /api/v1/contacts/{externalId}   200 (UserService.GetUser)
PATCH  /api/v1/contacts/{externalId}   partial update, 200 (UserService.UpdateUser)
DELETE /api/v1/contacts/{identifier}   external id first, then email; deletes the contact
                                       and every event of theirs, 200 (UserService.DeleteUser)
POST   /api/v1/events                  one event for a known contact, 201
                                       (TrackingService.TrackEvent with
                                       UNKNOWN_USER_POLICY_REJECT); the path is shared with
                                       VibeFollow, see :mod:`trackd.gateway.dialects.shared_paths`
=====================================  =====================================================

A contact is rendered as ``{"data": <contact>}``, every key always present::

    {"externalId": "user-123", "email": "ada@example.com", "name": "Ada" | null,
     "phone": null, "avatarUrl": null, "role": null, "plan": "pro" | null,
     "signedUpAt": "2024-01-15T10:30:00.000Z" | null,
     "customAttributes": {...}, "createdAt": "...Z", "updatedAt": "...Z"}

Times are ISO-8601 UTC with milliseconds. In a POST or PATCH body an absent field stays
as it is; ``null`` or ``""`` clears ``name``, ``phone``, ``avatarUrl``, ``role`` and
``plan``; ``customAttributes`` are merged key by key and a ``null`` attribute is removed.
``externalId`` cannot be changed by PATCH. A deletion answers
``{"data": {"deleted": true, "externalId": "...", "deletedEvents": N}}``; an event answers
``{"data": {"id", "externalId", "eventKey", "properties", "timestamp"}}``, where
``timestamp`` is when trackd received it (Cueflow's body has no time of its own).

Every failure is ``{"error": "<message>"}``: 400 ``Invalid request body: <what>`` (the
field named in Cueflow's spelling), 401 ``Unauthorized: <why>``, 403 ``Forbidden: <why>``,
404 ``Contact not found``, 413 ``Payload too large: <limit>``, 429 ``Rate limit exceeded``
with ``Retry-After``, 503 with ``Retry-After``. Rules only Cueflow has live here: flat
properties, the email default, its messages and its rate limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import (
    Any,
    NotRequired,  # pydantic needs these on 3.11
    Required,
)

import grpc
from aiohttp import web
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from pydantic import with_config
from typing_extensions import TypedDict

from trackd.gateway import convert
from trackd.gateway.decoding import STRICT_BODY, BodySchema, NonEmpty
from trackd.gateway.dialects.base import (
    Dialect,
    bearer_metadata,
    call,
    json_response,
    retry_headers,
)
from trackd.gateway.grpc_errors import Problem
from trackd.gateway.openapi.limits import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_RULE
from trackd.gateway.settings import TRACKING, USERS
from trackd.v1 import tracking_pb2, users_pb2

# Cueflow's contact fields that are User's optional strings: JSON name -> proto name.
PROFILE_FIELDS: dict[str, str] = {
    "email": "email", "name": "name", "phone": "phone", "avatarUrl": "avatar_url",
    "role": "role", "plan": "plan",
}
# Property values Cueflow allows: flat scalars only (bool is an int in Python; listed
# for the message's sake).
FLAT_TYPES: tuple[type, ...] = (str, bool, int, float)
FLAT_DESCRIPTION = "must be a string, number or boolean (properties are flat)"
# The server's field paths, in Cueflow's spelling.
FIELD_NAMES: dict[str, str] = {
    "event.external_user_id": "externalId",
    "event.name": "eventKey",
    "event.properties": "properties",
    "user.external_id": "externalId",
    "user.signed_up_at": "signedUpAt",
    "user.traits": "customAttributes",
    "user.emails": "email",
    "user.phones": "phone",
    **{f"user.{proto}": name for name, proto in PROFILE_FIELDS.items()},
}
# Cueflow's words for each status; the detail follows after a colon, except where the
# vendor's message is all there is to say.
TITLES: dict[int, str] = {
    400: "Invalid request body", 401: "Unauthorized", 403: "Forbidden",
    409: "Conflict", 413: "Payload too large", 500: "Internal server error",
    501: "Not implemented", 503: "Service unavailable", 504: "Gateway timeout",
}
FIXED_MESSAGES: dict[int, str] = {404: "Contact not found", 429: "Rate limit exceeded"}
# The UserService answers that carry the contact.
ContactResponse = users_pb2.GetUserResponse | users_pb2.UpdateUserResponse


def _field_name(path: str) -> str:
    for proto, name in FIELD_NAMES.items():
        if path == proto or path.startswith((f"{proto}.", f"{proto}[")):
            # An indexed emails/phones entry is the one `email`/`phone` the body sent.
            rest = "" if proto in ("user.emails", "user.phones") else path[len(proto):]
            return name + rest
    return path


def _render(problem: Problem) -> web.Response:
    message = FIXED_MESSAGES.get(problem.status)
    if message is None:
        title = TITLES.get(problem.status)
        message = f"{title}: {problem.message}" if title and problem.message else \
            title or problem.message
    return json_response({"error": message}, problem.status, retry_headers(problem))


CUEFLOW = Dialect(
    name="cueflow",
    render=_render,
    status_overrides={},
    field_name=_field_name,
)


@with_config(STRICT_BODY)
class CueflowEvent(TypedDict):
    """The body of POST /api/v1/events."""

    externalId: NonEmpty
    eventKey: NonEmpty
    properties: NotRequired[dict[str, Any] | None]


@with_config(STRICT_BODY)
class _ContactFields(TypedDict, total=False):
    """What a POST and a PATCH body share: every field optional."""

    externalId: NonEmpty
    name: str | None
    phone: str | None
    avatarUrl: str | None
    role: str | None
    plan: str | None
    signedUpAt: datetime
    customAttributes: dict[str, Any]


@with_config(STRICT_BODY)
class ContactChange(_ContactFields, total=False):
    """A PATCH body."""

    email: NonEmpty


@with_config(STRICT_BODY)
class NewContact(_ContactFields, total=False):
    """A POST body: ``email`` is required."""

    email: Required[NonEmpty]


EVENT = BodySchema(CueflowEvent)
CONTACT_CHANGE = BodySchema(ContactChange)
NEW_CONTACT = BodySchema(NewContact)


def _iso_datetime(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(ts: timestamp_pb2.Timestamp) -> str:
    return _iso_datetime(ts.ToDatetime(tzinfo=UTC))


def _contact(user: users_pb2.User) -> dict[str, Any]:
    contact: dict[str, Any] = {"externalId": user.external_id}
    for name, proto in PROFILE_FIELDS.items():
        contact[name] = getattr(user, proto) if user.HasField(proto) else None
    contact["signedUpAt"] = _iso(user.signed_up_at) if user.HasField("signed_up_at") else None
    contact["customAttributes"] = convert.struct_values(user.traits)
    contact["createdAt"] = _iso(user.created_at)
    contact["updatedAt"] = _iso(user.updated_at)
    return {"data": contact}


_invalid = CUEFLOW.invalid


def _user(external_id: str, body: ContactChange | NewContact) -> users_pb2.User:
    user = users_pb2.User(external_id=external_id)
    for name, proto in PROFILE_FIELDS.items():
        if name in body:
            setattr(user, proto, body[name] or "")  # type: ignore[literal-required]
    if "signedUpAt" in body:
        user.signed_up_at.CopyFrom(convert.timestamp(body["signedUpAt"], "signedUpAt"))
    if "customAttributes" in body:
        convert.fill_struct(user.traits, body["customAttributes"], "customAttributes",
                            convert.DEPTH_USER_TRAITS)
    return user


async def _contact_answer(request: web.Request,
                          method: Callable[..., Awaitable[ContactResponse]],
                          message: Message, metadata: list[tuple[str, str]]) -> web.Response:
    """Call a UserService method that answers with the user; 200 with the contact."""
    response = await call(request, method, message, metadata)
    return json_response(_contact(response.user))


@CUEFLOW.handler
async def upsert_contact(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/contacts: create (201) or update (200) a contact."""
    metadata = bearer_metadata(request)
    body = await CUEFLOW.body(request, NEW_CONTACT)
    message = users_pb2.UpsertUserRequest()
    message.user.CopyFrom(_user(body.get("externalId", body["email"]), body))  # any depth
    response = await call(request, request.app[USERS].UpsertUser, message, metadata)
    return json_response(_contact(response.user), 201 if response.created else 200)


@CUEFLOW.handler
async def get_contact(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/contacts/{externalId}."""
    metadata = bearer_metadata(request)
    message = users_pb2.GetUserRequest(external_id=request.match_info["external_id"])
    return await _contact_answer(request, request.app[USERS].GetUser, message, metadata)


@CUEFLOW.handler
async def update_contact(request: web.Request) -> web.StreamResponse:
    """PATCH /api/v1/contacts/{externalId}: change the fields present in the body."""
    metadata = bearer_metadata(request)
    external_id = request.match_info["external_id"]
    body = await CUEFLOW.body(request, CONTACT_CHANGE)
    if body.get("externalId", external_id) != external_id:
        raise _invalid("externalId", "cannot be changed")
    message = users_pb2.UpdateUserRequest()
    message.user.CopyFrom(_user(external_id, body))  # unlike the constructor, any depth
    return await _contact_answer(request, request.app[USERS].UpdateUser, message, metadata)


@CUEFLOW.handler
async def delete_contact(request: web.Request) -> web.StreamResponse:
    """DELETE /api/v1/contacts/{identifier}: by external id, else by email."""
    metadata = bearer_metadata(request)
    identifier = request.match_info["identifier"]
    delete = request.app[USERS].DeleteUser
    try:
        response = await call(request, delete,
                              users_pb2.DeleteUserRequest(external_id=identifier), metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        response = await call(request, delete,
                              users_pb2.DeleteUserRequest(email=identifier), metadata)
    return json_response({"data": {"deleted": True, "externalId": response.external_id,
                                   "deletedEvents": response.deleted_events}})


def _check_flat(properties: dict[str, Any]) -> None:
    for key, value in properties.items():
        if not isinstance(value, FLAT_TYPES):
            raise _invalid(f"properties.{key}", FLAT_DESCRIPTION)


@CUEFLOW.handler
async def track_event(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/events (a Cueflow-shaped body): one event for a known contact.

    ``Idempotency-Key`` is VibeFollow's; here it is not used, but one the operation's
    document forbids (empty, over the limit, not printable ASCII) is refused, not ignored:
    the shared operation states one rule for it."""
    metadata = bearer_metadata(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise _invalid("Idempotency-Key", IDEMPOTENCY_KEY_RULE)
    item = await CUEFLOW.body(request, EVENT)
    properties = item.get("properties") or {}
    _check_flat(properties)
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the database keeps ms
    event = tracking_pb2.Event(name=item["eventKey"], external_user_id=item["externalId"])
    event.timestamp.CopyFrom(convert.timestamp(now, "timestamp"))
    event.properties_json = convert.properties_json(properties, "properties")
    message = tracking_pb2.TrackEventRequest(
        event=event, unknown_user=tracking_pb2.UNKNOWN_USER_POLICY_REJECT)
    response = await call(request, request.app[TRACKING].TrackEvent, message, metadata)
    return json_response({"data": {
        "id": response.event_id,
        "externalId": item["externalId"],
        "eventKey": item["eventKey"],
        "properties": properties,
        "timestamp": _iso_datetime(now),
    }}, 201)


def add_routes(app: web.Application) -> None:
    """The contacts routes; POST /api/v1/events is added by shared_paths."""
    app.router.add_post("/api/v1/contacts", upsert_contact)
    app.router.add_get("/api/v1/contacts/{external_id}", get_contact)
    app.router.add_patch("/api/v1/contacts/{external_id}", update_contact)
    app.router.add_delete("/api/v1/contacts/{identifier}", delete_contact)
