"""PostHog's capture API: ``/batch/``, ``/capture/``, ``/e/`` and ``/i/v0/e/``
(docs/dialects/posthog.md).

Every route takes the same bodies: ``{"api_key", "batch": [event, ...], "sent_at"?}`` as
the server SDKs send, one event object, or a JSON array of events (posthog-js). The key
is the project API key: the body's ``api_key`` (or ``token``), else an event's
``api_key`` or ``properties.token``. Gzip comes as ``Content-Encoding: gzip`` or, from
posthog-js, as ``?compression=gzip-js``. Success is exactly 200 ``{"status": 1}`` (two
SDKs retry a 202); every failure is ``{"type", "code", "detail", "attr"}`` (the SDKs read
``detail``): 400 ``validation_error``, 401 ``authentication_error``, 413, 429 and 503
(with ``Retry-After``).

Mapping (each event):

- ``distinct_id`` (else ``properties.distinct_id``) -> the external user id; ``uuid`` ->
  the event id; ``timestamp`` -> the event's time; ``event`` -> its name
  (``$pageview`` and every other name as sent).
- ``$identify`` -> ``Identify``: the user ``distinct_id``, its ``$set`` / ``$set_once``
  traits, and ``$anon_distinct_id``'s events joining its history
  (``previous_user_id``). ``$create_alias`` -> ``Identify`` joining ``distinct_id`` (the
  earlier id) to ``properties.alias``. ``$set`` / ``$set_once`` events -> ``Identify``
  with those traits. None of these is stored as an event. Any other event carrying
  ``$set`` / ``$set_once`` (top level or in its properties) is stored and sets them too.
  ``$unset`` (a list of names) removes traits. ``$groupidentify`` is accepted and
  ignored (trackd has no groups).
- A top-level property whose key starts with ``$`` is PostHog's (``$lib``,
  ``$lib_version``, ``$python_*``, ``$os*``, ``$geoip_disable``, ``$groups``, ...): kept
  in the event's client context, never as a property; ``token`` is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import (
    Annotated,
    Any,
    NotRequired,  # pydantic needs these on 3.11
    TypeVar,
)

from aiohttp import web
from google.protobuf import timestamp_pb2
from pydantic import StringConstraints, ValidationError, with_config
from typing_extensions import TypedDict

from trackd.gateway.body import describe, field_path, inflate, parse_json, read_body, try_json
from trackd.gateway.convert import DEPTH_IDENTIFY_TRAITS, fill_struct, properties_json, timestamp
from trackd.gateway.decoding import STRICT_BODY, BodySchema, NonEmpty
from trackd.gateway.dialects.base import Dialect, json_response, retry_headers
from trackd.gateway.dialects.sdk_calls import Calls, client_context_json, key_metadata, send
from trackd.gateway.grpc_errors import Problem, ProblemError
from trackd.gateway.settings import GATEWAY_SETTINGS
from trackd.v1 import tracking_pb2

# An event id is any string of 1-256 characters (the server's event id limit).
POSTHOG_MAX_ID_CHARS = 256
# Events that change the user and are not stored.
IDENTIFY_EVENT = "$identify"
ALIAS_EVENT = "$create_alias"
SET_EVENTS = ("$set", "$set_once")
IGNORED_EVENTS = ("$groupidentify",)
# Property keys PostHog interprets (applied to the user, then dropped), and the key's.
USER_KEYS = ("$set", "$set_once", "$unset", "$anon_distinct_id")
DROPPED_KEYS = ("token", "api_key", "distinct_id")
SUCCESS = {"status": 1}
MISSING_KEY = "API key is required: send it as api_key in the body"
ROUTES = ("/batch/", "/capture/", "/e/", "/i/v0/e/")

Id = Annotated[str, StringConstraints(min_length=1, max_length=POSTHOG_MAX_ID_CHARS)]
BodyT = TypeVar("BodyT")



@with_config(STRICT_BODY)
class PostHogEvent(TypedDict):
    event: NonEmpty
    distinct_id: NotRequired[Id | None]
    properties: NotRequired[dict[str, Any] | None]
    # ISO-8601 (read by _time: validated from decoded JSON, where strict pydantic
    # would take only datetime objects).
    timestamp: NotRequired[str | None]
    uuid: NotRequired[Id | None]
    api_key: NotRequired[str | None]
    # Top-level person properties, as posthog-python's set() sends them.
    # (TypedDict keys cannot start with '$' as identifiers: read from the raw dict.)


# The body: ``{"batch": [...], ...}``, one event, or an array of events; each event is
# validated on its own (PostHogEvent), so an error names its place (``batch[3].event``).
BODY: BodySchema[list[Any] | dict[str, Any]] = BodySchema(list[Any] | dict[str, Any])
EVENT = BodySchema(PostHogEvent)

EVENT_FIELDS: Mapping[str, str] = {
    "name": "event", "external_user_id": "distinct_id", "event_id": "uuid",
    "client_context_json": "properties",
}
IDENTIFY_FIELDS: Mapping[str, str] = {
    "external_id": "distinct_id", "previous_user_id": "properties.$anon_distinct_id",
    "traits": "$set", "traits_once": "$set_once"}
ALIAS_FIELDS: Mapping[str, str] = {"external_id": "properties.alias",
                                   "previous_user_id": "distinct_id"}

ERROR_TYPES: Mapping[int, str] = {400: "validation_error", 401: "authentication_error",
                                  403: "authentication_error", 413: "validation_error",
                                  415: "validation_error", 429: "throttled"}


def _render(problem: Problem) -> web.Response:
    kind = ERROR_TYPES.get(problem.status,
                           "invalid_request" if problem.status < 500 else "server_error")
    return json_response({"type": kind, "code": problem.code, "detail": problem.message,
                          "attr": problem.field or None},
                         problem.status, retry_headers(problem))


POSTHOG = Dialect(name="posthog", render=_render)
_invalid = POSTHOG.invalid


def _at(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(path, "must be an object")
    return value


def _traits(item: dict[str, Any], properties: dict[str, Any], prefix: str) -> tuple[
        dict[str, Any], dict[str, Any], list[str]]:
    """$set, $set_once (top level, else in properties) and $unset of an event."""
    found: list[dict[str, Any]] = []
    for key in ("$set", "$set_once"):
        value = item.get(key, properties.get(key))
        # Person properties named with '$' are PostHog's own ($initial_referrer, ...).
        found.append({name: trait for name, trait in _object(value, _at(prefix, key)).items()
                      if not name.startswith("$")})
    unset = item.get("$unset", properties.get("$unset")) or []
    if not isinstance(unset, list) or not all(isinstance(key, str) for key in unset):
        raise _invalid(_at(prefix, "$unset"), "must be an array of property names")
    return found[0], found[1], [name for name in unset if not name.startswith("$")]


def _identify(user: str, traits: dict[str, Any], once: dict[str, Any], unset: list[str],
              previous: str, prefix: str) -> tracking_pb2.IdentifyRequest:
    identify = tracking_pb2.IdentifyRequest(external_id=user, previous_user_id=previous)
    merged: dict[str, Any] = {**dict.fromkeys(unset), **traits}
    if merged:
        fill_struct(identify.traits, merged, _at(prefix, "$set"), DEPTH_IDENTIFY_TRAITS)
    if once:
        fill_struct(identify.traits_once, once, _at(prefix, "$set_once"),
                    DEPTH_IDENTIFY_TRAITS)
    return identify


def _add(calls: Calls, raw_item: Any, prefix: str) -> None:
    if not isinstance(raw_item, dict):
        raise _invalid(prefix or "body", "must be an object")
    try:
        item = EVENT.validate_python(raw_item)
    except ValidationError as exc:
        raise ProblemError(_problem(exc, prefix)) from exc
    name = item["event"]
    properties = dict(item.get("properties") or {})
    user = item.get("distinct_id") or properties.get("distinct_id") or ""
    if not isinstance(user, str) or not user:
        raise _invalid(_at(prefix, "distinct_id"), "is required")
    traits, once, unset = _traits(raw_item, properties, prefix)
    if name == ALIAS_EVENT:
        alias = properties.get("alias")
        if not isinstance(alias, str) or not alias:
            raise _invalid(_at(prefix, "properties.alias"), "is required for $create_alias")
        calls.identifies.append((prefix, ALIAS_FIELDS, tracking_pb2.IdentifyRequest(
            external_id=alias, previous_user_id=user)))
        return
    if name in IGNORED_EVENTS:
        return
    previous = properties.get("$anon_distinct_id") if name == IDENTIFY_EVENT else None
    if previous is not None and not isinstance(previous, str):
        raise _invalid(_at(prefix, "properties.$anon_distinct_id"), "must be a string")
    if name == IDENTIFY_EVENT or name in SET_EVENTS or traits or once or unset:
        calls.identifies.append((prefix, IDENTIFY_FIELDS, _identify(
            user, traits, once, unset, previous or "", prefix)))
    if name == IDENTIFY_EVENT or name in SET_EVENTS:
        return
    user_properties = {key: value for key, value in properties.items()
                       if not key.startswith("$") and key not in DROPPED_KEYS}
    library = {key: value for key, value in properties.items()
               if key.startswith("$") and key not in USER_KEYS}
    event = tracking_pb2.Event(name=name, external_user_id=user,
                               event_id=item.get("uuid") or "")
    if (when := item.get("timestamp")) is not None:
        event.timestamp.CopyFrom(_time(when, _at(prefix, "timestamp")))
    if user_properties:
        event.properties_json = properties_json(user_properties, _at(prefix, "properties"))
    if library:
        event.client_context_json = client_context_json(library)
    calls.events.append((prefix, EVENT_FIELDS, event))


def _time(value: str, path: str) -> timestamp_pb2.Timestamp:
    """An ISO-8601 date-time (UTC without an offset) as a Timestamp."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _invalid(path, "must be an ISO-8601 date-time") from exc
    return timestamp(when, path)


def _problem(exc: ValidationError, prefix: str) -> Problem:
    """A validation error of one event, at ``prefix`` in the body."""
    first = exc.errors(include_url=False)[0]
    path = field_path(first["loc"])
    return Problem.invalid(400, _at(prefix, path) if path else (prefix or "body"),
                           describe(first))


def _key(body: Any) -> str | None:
    """The project API key: the body's ``api_key`` or ``token``, else the first
    event's ``api_key`` or ``properties.token``."""
    events: list[Any] = []
    if isinstance(body, dict):
        for name in ("api_key", "token"):
            if isinstance(body.get(name), str) and body[name]:
                return str(body[name])
        events = body["batch"] if isinstance(body.get("batch"), list) else [body]
    elif isinstance(body, list):
        events = body
    for item in events[:1]:
        if not isinstance(item, dict):
            continue
        properties = item.get("properties")
        for key in (item.get("api_key"),
                    properties.get("token") if isinstance(properties, dict) else None):
            if isinstance(key, str) and key:
                return key
    return None


async def _raw(request: web.Request) -> bytes:
    raw = await read_body(request)
    if request.query.get("compression") == "gzip-js":
        raw = inflate(raw, "gzip", request.app[GATEWAY_SETTINGS].max_body_bytes)
    return raw


@POSTHOG.handler
async def capture(request: web.Request) -> web.StreamResponse:
    """POST /batch/, /capture/, /e/, /i/v0/e/: a batch, one event, or an array."""
    raw = await _raw(request)
    loose = try_json(BODY, raw)  # decoded once when it is JSON
    # The key is looked for before the body is judged: without one, only 401 is said.
    metadata = key_metadata(_key(loose), MISSING_KEY)
    body = loose if loose is not None else parse_json(
        BODY, raw, invalid_status=POSTHOG.invalid_status)
    calls = Calls()
    if isinstance(body, dict) and "batch" in body:
        items = body["batch"]
        if not isinstance(items, list):
            raise _invalid("batch", "must be an array")
        for index, item in enumerate(items):
            _add(calls, item, f"batch[{index}]")
        whole = "batch"
    elif isinstance(body, list):
        for index, item in enumerate(body):
            _add(calls, item, f"[{index}]")
        whole = "body"
    else:
        _add(calls, body, "")
        whole = "body"
    await send(request, calls, metadata, whole)
    return json_response(SUCCESS)


def add_routes(app: web.Application) -> None:
    for path in ROUTES:
        app.router.add_post(path, capture)
