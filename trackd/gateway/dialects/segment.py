"""Segment's HTTP tracking API, which RudderStack's SDKs speak too: ``/v1/batch`` and
the single-call routes ``/v1/track``, ``/v1/identify``, ``/v1/page``, ``/v1/screen``,
``/v1/group`` and ``/v1/alias`` (docs/dialects/segment.md).

The write key is the HTTP Basic user name (``base64("<key>:")``; ``Bearer <key>`` too)
or, without an Authorization header, the body's ``writeKey``. Success is 200
``{"success":true}``; every failure is ``{"success":false,"code","message"}`` (the SDKs
read ``code`` and ``message``): 400 for a body that is not JSON or fails validation
(``message`` names the field: ``batch[3].userId ...``), 401 for a missing or invalid
key, 403, 413 past :data:`SEGMENT_MAX_BODY_BYTES`, 429 and 503 with ``Retry-After``.
A body is JSON whatever its ``Content-Type`` says (RudderStack's Node SDK labels its
gzipped JSON ``application/x-www-form-urlencoded``).

Mapping (each message of a batch, or the single call's body):

- ``userId`` -> the external user id, ``anonymousId`` -> the anonymous id (null is
  absent); ``messageId`` -> the event id, so a resent batch is stored once.
- ``track`` -> an event named ``event``; ``page`` / ``screen`` -> an event
  ``Loaded a Page`` / ``Loaded a Screen`` whose properties add the call's ``name`` and
  ``category``.
- ``identify`` -> ``Identify`` (the user upserted with ``traits``, else
  ``context.traits``, and ``anonymousId`` linked); ``alias`` -> ``Identify`` linking
  ``previousId`` to ``userId``; ``group`` -> ``Identify`` setting the traits ``groupId``
  and ``group`` (the group's traits). One without a ``userId`` names no user to change:
  accepted and ignored.
- ``context``, ``integrations``, ``_metadata`` and ``channel`` (the batch's, overridden
  by the message's) are the event's client context, never its properties.
- Time: ``timestamp``, else ``originalTimestamp`` corrected for the client's clock by
  ``sentAt`` (the message's, else the batch's) as Segment does:
  ``receivedAt - (sentAt - originalTimestamp)``; else the time received.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,  # pydantic needs these on 3.11
    TypeVar,
)

from aiohttp import web
from pydantic import ConfigDict, StringConstraints, with_config
from typing_extensions import TypedDict

from trackd.gateway.body import parse_json, read_body, try_json
from trackd.gateway.convert import (
    DEPTH_IDENTIFY_TRAITS,
    OUT_OF_RANGE,
    UnencodableValue,
    fill_struct,
    properties_json,
    timestamp,
)
from trackd.gateway.decoding import STRICT_BODY, BodySchema
from trackd.gateway.dialects.base import Dialect, Handler, json_response, retry_headers
from trackd.gateway.dialects.sdk_calls import (
    Calls,
    basic_key,
    client_context_json,
    key_metadata,
    send,
)
from trackd.gateway.grpc_errors import Problem, ProblemError
from trackd.v1 import tracking_pb2

# The larger of Segment's documented request size (500 KB a batch, 32 KB a call) and
# RudderStack's (4 MB), since both SDK families send here.
SEGMENT_MAX_BODY_BYTES = 4 * 1024 * 1024
# A message id is any string of 1-256 characters (the server's event id limit).
SEGMENT_MAX_ID_CHARS = 256
MessageType = Literal["track", "page", "screen", "identify", "group", "alias"]
# The events page and screen calls become.
PAGE_EVENT = "Loaded a Page"
SCREEN_EVENT = "Loaded a Screen"
# Fields of a message that are the library's, not the user's: the event's client context.
CLIENT_FIELDS = ("context", "integrations", "_metadata", "channel")
MESSAGE_TYPES: tuple[MessageType, ...] = ("track", "page", "screen", "identify", "group",
                                          "alias")
SUCCESS = {"success": True}
MISSING_KEY = "missing write key: send it as the Basic user name or as writeKey"

Id = Annotated[str, StringConstraints(min_length=1, max_length=SEGMENT_MAX_ID_CHARS)]

BodyT = TypeVar("BodyT")


@with_config(STRICT_BODY)
class SegmentMessage(TypedDict):
    """One call: an item of a batch, or a single-call route's body."""

    type: NotRequired[MessageType]
    messageId: NotRequired[Id | None]
    userId: NotRequired[Id | None]
    anonymousId: NotRequired[Id | None]
    event: NotRequired[str | None]
    name: NotRequired[str | None]
    category: NotRequired[str | None]
    properties: NotRequired[dict[str, Any] | None]
    traits: NotRequired[dict[str, Any] | None]
    groupId: NotRequired[Id | None]
    previousId: NotRequired[Id | None]
    timestamp: NotRequired[datetime | None]
    originalTimestamp: NotRequired[datetime | None]
    sentAt: NotRequired[datetime | None]
    context: NotRequired[dict[str, Any] | None]
    integrations: NotRequired[dict[str, Any] | None]
    _metadata: NotRequired[dict[str, Any] | None]
    channel: NotRequired[str | None]
    writeKey: NotRequired[str | None]


@with_config(STRICT_BODY)
class SegmentBatch(TypedDict):
    batch: list[SegmentMessage]
    sentAt: NotRequired[datetime | None]
    context: NotRequired[dict[str, Any] | None]
    integrations: NotRequired[dict[str, Any] | None]
    writeKey: NotRequired[str | None]


BATCH = BodySchema(SegmentBatch)
MESSAGE = BodySchema(SegmentMessage)

# The RPCs' field names -> a message's, by what the message became.
EVENT_FIELDS: Mapping[str, str] = {
    "name": "event", "external_user_id": "userId", "anonymous_id": "anonymousId",
    "event_id": "messageId", "client_context_json": "context",
}
PAGE_FIELDS: Mapping[str, str] = {**EVENT_FIELDS, "name": "type"}
IDENTIFY_FIELDS: Mapping[str, str] = {"external_id": "userId",
                                      "anonymous_id": "anonymousId"}
ALIAS_FIELDS: Mapping[str, str] = {"external_id": "userId", "anonymous_id": "previousId"}


def _render(problem: Problem) -> web.Response:
    return json_response({"success": False, "code": problem.code, "message": problem.message},
                         problem.status, retry_headers(problem))


SEGMENT = Dialect(name="segment", render=_render)
_invalid = SEGMENT.invalid


def _at(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _time(message: SegmentMessage, sent_at: datetime | None, received: datetime,
          prefix: str) -> tracking_pb2.Event:
    """An Event holding only the message's time, when it has one."""
    event = tracking_pb2.Event()
    when = message.get("timestamp")
    path = _at(prefix, "timestamp")
    if when is None and (original := message.get("originalTimestamp")) is not None:
        path = _at(prefix, "originalTimestamp")
        sent = message.get("sentAt") or sent_at
        if sent is None:
            when = original
        else:  # the client's clock skew taken out: may land outside any datetime
            try:
                when = received - (_utc(sent) - _utc(original))
            except OverflowError as exc:
                raise UnencodableValue(path, OUT_OF_RANGE) from exc
    if when is not None:
        event.timestamp.CopyFrom(timestamp(when, path))
    return event


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _event(message: SegmentMessage, kind: str, prefix: str, client: dict[str, Any],
           sent_at: datetime | None, received: datetime) -> tracking_pb2.Event:
    user, anonymous = message.get("userId") or "", message.get("anonymousId") or ""
    if not user and not anonymous:
        raise _invalid(_at(prefix, "userId"), "or anonymousId is required")
    properties = dict(message.get("properties") or {})
    if kind == "track":
        name = message.get("event") or ""
        if not name:
            raise _invalid(_at(prefix, "event"), "is required for a track call")
    else:
        name = PAGE_EVENT if kind == "page" else SCREEN_EVENT
        for key in ("name", "category"):
            if (value := message.get(key)) is not None:
                properties[key] = value
    event = _time(message, sent_at, received, prefix)
    event.name = name
    event.external_user_id = user
    event.anonymous_id = anonymous
    event.event_id = message.get("messageId") or ""
    if properties:
        event.properties_json = properties_json(properties, _at(prefix, "properties"))
    if client:
        event.client_context_json = client_context_json(client)
    return event


def _identify(message: SegmentMessage, kind: str,
              prefix: str) -> tracking_pb2.IdentifyRequest | None:
    """The user change an identify, group or alias call makes; None for one naming no
    user (an anonymous identify or group: trackd keeps no anonymous profiles)."""
    user = message.get("userId") or ""
    if kind == "alias":
        previous = message.get("previousId") or ""
        if not user or not previous:
            raise _invalid(_at(prefix, "userId" if not user else "previousId"),
                           "is required for an alias call")
        return tracking_pb2.IdentifyRequest(external_id=user, anonymous_id=previous)
    if kind == "group" and not message.get("groupId"):
        raise _invalid(_at(prefix, "groupId"), "is required for a group call")
    if not user:
        if not message.get("anonymousId"):
            raise _invalid(_at(prefix, "userId"), "or anonymousId is required")
        return None
    identify = tracking_pb2.IdentifyRequest(external_id=user,
                                            anonymous_id=message.get("anonymousId") or "")
    traits: dict[str, Any] | None
    if kind == "group":
        traits = {"groupId": message.get("groupId"), "group": message.get("traits") or {}}
    else:
        context_traits = (message.get("context") or {}).get("traits")
        traits = message.get("traits") or (
            context_traits if isinstance(context_traits, dict) else None)
    if traits:
        fill_struct(identify.traits, traits, _at(prefix, "traits"), DEPTH_IDENTIFY_TRAITS)
    return identify


def _add(calls: Calls, message: SegmentMessage, kind: str, prefix: str,
         batch_client: Mapping[str, Any], sent_at: datetime | None,
         received: datetime) -> None:
    if kind in ("identify", "group", "alias"):
        identify = _identify(message, kind, prefix)
        if identify is not None:
            calls.identifies.append(
                (prefix, ALIAS_FIELDS if kind == "alias" else IDENTIFY_FIELDS, identify))
        return
    client = {**batch_client, **{key: message[key] for key in CLIENT_FIELDS  # type: ignore[literal-required]
                                 if message.get(key) is not None}}
    calls.events.append((prefix, EVENT_FIELDS if kind == "track" else PAGE_FIELDS,
                         _event(message, kind, prefix, client, sent_at, received)))


@with_config(ConfigDict(extra="ignore"))
class _KeyOnly(TypedDict, total=False):
    writeKey: Any


_KEY_ONLY = BodySchema(_KeyOnly)


async def _read(request: web.Request, adapter: BodySchema[BodyT]) -> tuple[
        list[tuple[str, str]], BodyT]:
    """The call metadata of the request's key, then its body parsed against ``adapter``.

    The key is found before the body is validated, so a caller without one learns
    nothing about the body but 401."""
    key = basic_key(request)
    raw = await read_body(request)
    if len(raw) > SEGMENT_MAX_BODY_BYTES:
        raise ProblemError(Problem(
            413, f"request body exceeds the limit of {SEGMENT_MAX_BODY_BYTES} bytes",
            reason="PAYLOAD_TOO_LARGE"))
    body = None
    if key is None:
        body = try_json(adapter, raw)  # decoded once when it fits
        if body is not None:
            found: Any = body.get("writeKey")  # type: ignore[attr-defined]
        else:  # the key of a body that does not fit: without one, only 401 is said
            loose = try_json(_KEY_ONLY, raw)
            found = loose.get("writeKey") if loose is not None else None
        key = found if isinstance(found, str) else None
    metadata = key_metadata(key, MISSING_KEY)
    return metadata, body if body is not None else parse_json(
        adapter, raw, invalid_status=SEGMENT.invalid_status)


@SEGMENT.handler
async def batch(request: web.Request) -> web.StreamResponse:
    """POST /v1/batch: any mix of calls; events all or nothing (up to 500 a call)."""
    received = datetime.now(UTC)
    metadata, body = await _read(request, BATCH)
    batch_client = {key: body[key] for key in ("context", "integrations")
                    if body.get(key) is not None}
    calls = Calls()
    for index, message in enumerate(body["batch"]):
        prefix = f"batch[{index}]"
        kind = message.get("type")
        if kind is None:
            raise _invalid(f"{prefix}.type", "is required")
        _add(calls, message, kind, prefix, batch_client, body.get("sentAt"), received)
    await send(request, calls, metadata, "batch")
    return json_response(SUCCESS)


def _single(kind: MessageType) -> Handler:
    async def single(request: web.Request) -> web.StreamResponse:
        received = datetime.now(UTC)
        metadata, message = await _read(request, MESSAGE)
        calls = Calls()
        _add(calls, message, kind, "", {}, None, received)
        await send(request, calls, metadata, "")
        return json_response(SUCCESS)

    single.__name__ = kind
    single.__doc__ = f"POST /v1/{kind}: one {kind} call."
    return SEGMENT.handler(single)


SINGLE_ROUTES: Mapping[str, Callable[..., Any]] = {
    f"/v1/{kind}": _single(kind) for kind in MESSAGE_TYPES
}
# Every path this dialect owns (exactly: /v1/batch/x is Flywheel's /v1/ space).
SEGMENT_PATHS = frozenset({"/v1/batch", *SINGLE_ROUTES})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/batch", batch)
    for path, handler in SINGLE_ROUTES.items():
        app.router.add_post(path, handler)
