"""Mixpanel's ingestion API: ``/track``, ``/import`` and ``/engage``
(docs/dialects/mixpanel.md).

Bodies are form-encoded ``data=<json>`` (one object or an array), as the SDKs send them,
with ``verbose=1`` for a JSON answer; a JSON body is taken too. The key is the project
token: ``properties.token`` of each event on ``/track``, ``$token`` of each update on
``/engage``, and on ``/import`` the HTTP Basic user name (``api_secret:``), else
``properties.token``. Success is ``{"status": 1, "error": null}`` with ``verbose=1``,
else ``1``; a refusal is ``{"status": 0, "error": "..."}`` (or ``0``), at its HTTP status
(400, 401, 413, 429 and 503 with ``Retry-After``): the SDKs read ``status`` whatever the
HTTP status, and retry 5xx.

Mapping (each event):

- ``properties.distinct_id`` -> the external user id; ``$device_id`` -> the anonymous id;
  ``$insert_id`` -> the event id; ``time`` (seconds, integer or float; milliseconds when
  above 10^11) -> the time; ``event`` -> the name.
- ``$identify`` joins ``$anon_id``'s history to ``$identified_id``; ``$create_alias``
  joins ``distinct_id``'s (the original) to ``alias``'s. Neither is stored.
- Top-level properties starting with ``$`` or ``mp_`` (``mp_lib``, ``$lib_version``,
  ``$os``, ...) are Mixpanel's: the event's client context, never properties; ``token``
  is dropped.
- ``/engage``: ``$set``, ``$set_once``, ``$unset`` change the user ``$distinct_id``; the
  other operations (``$add``, ``$append``, ``$union``, ``$remove``, ``$delete``) are
  refused by name.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from google.protobuf import timestamp_pb2

from trackd.gateway.body import read_body
from trackd.gateway.convert import (
    DEPTH_IDENTIFY_TRAITS,
    fill_struct,
    properties_json,
    timestamp_from_millis,
)
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
from trackd.wire.limits import TIMESTAMP_MAX_SECONDS, TIMESTAMP_MIN_SECONDS

# Mixpanel's documented limits: messages per request by route, characters of an id.
MIXPANEL_MAX_MESSAGES: Mapping[str, int] = {"/track": 50, "/engage": 50, "/import": 2000}
MIXPANEL_MAX_ID_CHARS = 255
# A time above this is in milliseconds (10^11 seconds is in the year 5138).
MILLIS_ABOVE = 10**11
IDENTIFY_EVENT = "$identify"
ALIAS_EVENT = "$create_alias"
# Profile operations trackd applies; Mixpanel's others are refused by name.
PROFILE_OPERATIONS = ("$set", "$set_once", "$unset")
OTHER_OPERATIONS = ("$add", "$append", "$union", "$remove", "$delete")
DROPPED_KEYS = ("token", "distinct_id", "time", "$insert_id", "$device_id")
MISSING_KEY = "token is required (properties.token, or $token on /engage)"

EVENT_NAMES: Mapping[str, str] = {
    "name": "event", "external_user_id": "properties.distinct_id",
    "anonymous_id": "properties.$device_id", "event_id": "properties.$insert_id",
    "properties": "properties", "client_context_json": "properties"}
IDENTIFY_NAMES: Mapping[str, str] = {
    "external_id": "properties.$identified_id", "previous_user_id": "properties.$anon_id"}
ALIAS_NAMES: Mapping[str, str] = {
    "external_id": "properties.alias", "previous_user_id": "properties.distinct_id"}
ENGAGE_NAMES: Mapping[str, str] = {"external_id": "$distinct_id", "traits": "$set",
                                   "traits_once": "$set_once"}
_VERBOSE = web.RequestKey("mixpanel_verbose", bool)


def _render(problem: Problem) -> web.Response:
    return json_response({"status": 0, "error": problem.message}, problem.status,
                         retry_headers(problem))


MIXPANEL = Dialect(name="mixpanel", render=_render)
_invalid = MIXPANEL.invalid


def _success(request: web.Request) -> web.Response:
    return json_response({"status": 1, "error": None} if request.get(_VERBOSE, False) else 1)


def is_form(content_type: str, raw: bytes) -> bool:
    """Whether a body is Mixpanel's form (``data=...``), which is how ``/track`` tells a
    Mixpanel request from Databuddy's JSON or text beacon."""
    return content_type.startswith("application/x-www-form-urlencoded") \
        or raw.startswith(b"data=")


def _messages(request: web.Request, raw: bytes) -> list[Any]:
    """The messages of a form (``data=``, plain or base64) or JSON body."""
    fields = parse_qs(raw.decode(errors="replace"), keep_blank_values=True) \
        if is_form(request.content_type, raw) else {}
    request[_VERBOSE] = (fields.get("verbose") or [request.query.get("verbose", "0")])[0] \
        == "1"
    data = fields["data"][0].encode() if "data" in fields else raw
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            value = orjson.loads(base64.b64decode(data, validate=False))
        except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
            raise _invalid("data", "must be JSON (or base64 of JSON)") from exc
    messages = value if isinstance(value, list) else [value]
    limit = MIXPANEL_MAX_MESSAGES[request.path]
    if not messages:
        raise _invalid("data", "must hold at least one message")
    if len(messages) > limit:
        raise ProblemError(Problem(413, f"data holds more than {limit} messages",
                                   reason="PAYLOAD_TOO_LARGE"))
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"data[{index}]", "must be an object")
    return messages


def _string(value: Any, path: str, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise _invalid(path, "is required")
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # Mixpanel's SDKs send numeric ids as they were given
    if not isinstance(value, str):
        raise _invalid(path, "must be a string")
    if len(value) > MIXPANEL_MAX_ID_CHARS:
        raise _invalid(path, f"must be at most {MIXPANEL_MAX_ID_CHARS} characters")
    return value


def _time(value: Any, path: str) -> timestamp_pb2.Timestamp:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(path, "must be Unix seconds (a number)")
    millis = value if value > MILLIS_ABOVE else value * 1000
    if not TIMESTAMP_MIN_SECONDS * 1000 <= millis <= TIMESTAMP_MAX_SECONDS * 1000:
        raise _invalid(path, "is out of range")
    return timestamp_from_millis(millis)


def _event(calls: Calls, message: dict[str, Any], prefix: str) -> None:
    name = message.get("event")
    if not isinstance(name, str) or not name:
        raise _invalid(f"{prefix}.event", "is required")
    properties = message.get("properties") or {}
    if not isinstance(properties, dict):
        raise _invalid(f"{prefix}.properties", "must be an object")
    at = f"{prefix}.properties"
    if name in (IDENTIFY_EVENT, ALIAS_EVENT):
        if name == IDENTIFY_EVENT:
            user = _string(properties.get("$identified_id"), f"{at}.$identified_id")
            earlier = _string(properties.get("$anon_id"), f"{at}.$anon_id")
        else:
            user = _string(properties.get("alias"), f"{at}.alias")
            earlier = _string(properties.get("distinct_id"), f"{at}.distinct_id")
        calls.identifies.append((prefix, IDENTIFY_NAMES if name == IDENTIFY_EVENT
                                 else ALIAS_NAMES, tracking_pb2.IdentifyRequest(
                                     external_id=user, previous_user_id=earlier)))
        return
    user = _string(properties.get("distinct_id"), f"{at}.distinct_id", required=False)
    device = _string(properties.get("$device_id"), f"{at}.$device_id", required=False)
    if not user and not device:
        raise _invalid(f"{at}.distinct_id", "is required")
    event = tracking_pb2.Event(name=name, external_user_id=user, anonymous_id=device,
                               event_id=_string(properties.get("$insert_id"),
                                                f"{at}.$insert_id", required=False))
    if properties.get("time") is not None:
        event.timestamp.CopyFrom(_time(properties["time"], f"{at}.time"))
    own = {key: value for key, value in properties.items()
           if not key.startswith(("$", "mp_")) and key not in DROPPED_KEYS}
    library = {key: value for key, value in properties.items()
               if key.startswith(("$", "mp_")) and key not in DROPPED_KEYS}
    if own:
        event.properties_json = properties_json(own, at)
    if library:
        event.client_context_json = client_context_json(library)
    calls.events.append((prefix, EVENT_NAMES, event))


def _engage(calls: Calls, message: dict[str, Any], prefix: str) -> None:
    user = _string(message.get("$distinct_id"), f"{prefix}.$distinct_id")
    for operation in OTHER_OPERATIONS:
        if operation in message:
            raise _invalid(f"{prefix}.{operation}", "is an operation trackd does not apply "
                                                   "(only $set, $set_once and $unset)")
    values: dict[str, Any] = {}
    for operation in PROFILE_OPERATIONS:
        value = message.get(operation)
        expected = list if operation == "$unset" else dict
        if value is not None and not isinstance(value, expected):
            raise _invalid(f"{prefix}.{operation}", "must be an array" if expected is list
                           else "must be an object")
        values[operation] = value or ([] if expected is list else {})
    identify = tracking_pb2.IdentifyRequest(external_id=user)
    traits = {**dict.fromkeys(key for key in values["$unset"] if isinstance(key, str)
                              and not key.startswith("$")),
              **{key: value for key, value in values["$set"].items()
                 if not key.startswith("$")}}
    once = {key: value for key, value in values["$set_once"].items()
            if not key.startswith("$")}
    if traits:
        fill_struct(identify.traits, traits, f"{prefix}.$set", DEPTH_IDENTIFY_TRAITS)
    if once:
        fill_struct(identify.traits_once, once, f"{prefix}.$set_once", DEPTH_IDENTIFY_TRAITS)
    calls.identifies.append((prefix, ENGAGE_NAMES, identify))


def _token(message: dict[str, Any], engage: bool) -> str | None:
    if engage:
        token = message.get("$token")
    else:
        properties = message.get("properties")
        token = properties.get("token") if isinstance(properties, dict) else None
    return token if isinstance(token, str) and token else None


async def _handle(request: web.Request) -> web.StreamResponse:
    """POST /track, /import, /engage: events, or profile updates."""
    engage = request.path == "/engage"
    header_key = basic_key(request) if request.path == "/import" else None
    messages = _messages(request, await read_body(request))
    metadata = key_metadata(header_key or _token(messages[0], engage), MISSING_KEY)
    calls = Calls()
    whole = "data"
    for index, message in enumerate(messages):
        prefix = f"data[{index}]" if len(messages) > 1 else "data"
        (_engage if engage else _event)(calls, message, prefix)
    await send(request, calls, metadata, whole)
    return _success(request)


def _verbose_envelope(handler: Handler) -> Handler:
    """A refusal without ``verbose=1`` is a bare ``0``, as Mixpanel answers (its status
    and headers kept)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        if response.status >= 400 and not request.get(_VERBOSE, True) \
                and isinstance(response, web.Response):
            response.body = b"0"
        return response

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


track = _verbose_envelope(MIXPANEL.handler(_handle))


def add_routes(app: web.Application) -> None:
    # POST /track is shared with Databuddy: trackd.gateway.dialects.shared_paths owns it.
    for path in ("/import", "/engage"):
        app.router.add_post(path, track)
