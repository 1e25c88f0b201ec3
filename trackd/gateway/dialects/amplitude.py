"""Amplitude's HTTP V2 and Batch APIs: ``/2/httpapi`` and ``/batch``
(docs/dialects/amplitude.md).

Both take ``{"api_key", "events": [event, ...], "options"?: {"min_id_length"}}``. Success
is 200 ``{"code": 200, "server_upload_time", "payload_size_bytes", "events_ingested"}``
(the SDK reads ``code`` from the body: a 200 without it loses the events). Every failure
is ``{"code": <status>, "error": ...}`` and what the SDK reads to decide, per event,
whether to retry: ``missing_field``, ``events_with_invalid_fields`` /
``events_with_missing_fields`` / ``events_with_invalid_id_lengths`` (``{field:
[indices]}``: those events are dropped, the others resent), ``throttled_events``. A key
that is missing, unknown or may not track is 400 ``Invalid API key: ...``, which the SDK
takes as final (any other 4xx would be retried); 413 makes it halve its batches.

Mapping (each event):

- ``user_id`` -> the external user id, ``device_id`` -> the anonymous id; an event with
  both links the device to the user (one ``Identify`` per pair and request).
- ``event_type`` -> the name; ``insert_id`` -> the event id (a resent event is stored
  once); ``time`` (Unix ms) -> the time; ``event_properties`` -> the properties.
- ``user_properties`` (``$set``, ``$setOnce``, ``$unset``; keys without an operation are
  ``$set``) -> the user's traits; Amplitude's other operations (``$add``, ``$append``,
  ...) are refused by name. ``$identify`` only changes the user; ``$groupidentify`` is
  accepted and ignored (trackd has no groups).
- Every other field (platform, device, location, ``library``, ``session_id``,
  revenue fields, ``groups``, ...) is the event's client context, never a property.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Annotated, Any, NotRequired

from aiohttp import web
from pydantic import (
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    with_config,
)
from typing_extensions import TypedDict

from trackd.gateway.body import parse_json, read_body, try_json
from trackd.gateway.convert import (
    DEPTH_IDENTIFY_TRAITS,
    fill_struct,
    properties_json,
    timestamp_from_millis,
)
from trackd.gateway.decoding import STRICT_BODY, BodySchema, NonEmpty
from trackd.gateway.dialects.base import Dialect, json_response, retry_headers
from trackd.gateway.dialects.sdk_calls import Calls, client_context_json, key_metadata, send
from trackd.gateway.grpc_errors import Problem, ProblemError
from trackd.v1 import tracking_pb2
from trackd.wire.limits import TIMESTAMP_MAX_SECONDS, TIMESTAMP_MIN_SECONDS

# Amplitude's documented limits: events per request, request size per route, id length.
AMPLITUDE_MAX_EVENTS = 2000
AMPLITUDE_MAX_BODY_BYTES: Mapping[str, int] = {"/2/httpapi": 1024 * 1024,
                                               "/batch": 20 * 1024 * 1024}
AMPLITUDE_DEFAULT_MIN_ID_LENGTH = 5
AMPLITUDE_MAX_ID_CHARS = 256  # the server's; Amplitude's is 1024
IDENTIFY_EVENT = "$identify"
IGNORED_EVENTS = ("$groupidentify",)
# user_properties operations trackd applies; the others are refused by name.
SET, SET_ONCE, UNSET = "$set", "$setOnce", "$unset"
# Fields that are the event's own; every other field is client context.
EVENT_FIELDS = ("user_id", "device_id", "event_type", "time", "event_properties",
                "user_properties", "insert_id")
INVALID_KEY = "Invalid API key: "
KEY_MESSAGES: Mapping[str, str] = {
    "API_KEY_MISSING": INVALID_KEY + "none was sent (api_key in the body)",
    "API_KEY_INVALID": INVALID_KEY + "unknown or revoked",
    "SCOPE_MISSING": INVALID_KEY + "the key may not track events (scope track:events)",
}
_INDEXED = re.compile(r"events\[(\d+)\]\.([A-Za-z_]+)")

Id = Annotated[str, StringConstraints(min_length=1, max_length=AMPLITUDE_MAX_ID_CHARS)]
_STRICT = ConfigDict(strict=True, extra="allow")


def _integral(value: Any) -> Any:
    """A float without a fraction as the integer it is; anything else unchanged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


@with_config(_STRICT)
class AmplitudeEvent(TypedDict):
    event_type: NonEmpty
    user_id: NotRequired[Id | None]
    device_id: NotRequired[Id | None]
    # JSON's 1.0 is an integer too (JSON Schema's "integer"); a fraction is refused.
    time: NotRequired[Annotated[int, BeforeValidator(_integral)] | None]
    event_properties: NotRequired[dict[str, Any] | None]
    user_properties: NotRequired[dict[str, Any] | None]
    insert_id: NotRequired[Id | None]


@with_config(STRICT_BODY)
class AmplitudeOptions(TypedDict):
    min_id_length: NotRequired[int | None]


@with_config(STRICT_BODY)
class AmplitudeBody(TypedDict):
    api_key: NotRequired[str | None]
    events: list[AmplitudeEvent]
    options: NotRequired[AmplitudeOptions | None]


BODY = BodySchema(AmplitudeBody)

EVENT_NAMES: Mapping[str, str] = {
    "name": "event_type", "external_user_id": "user_id", "anonymous_id": "device_id",
    "event_id": "insert_id", "properties": "event_properties", "client_context_json": "",
}
IDENTIFY_NAMES: Mapping[str, str] = {"external_id": "user_id", "anonymous_id": "device_id",
                                     "traits": "user_properties",
                                     "traits_once": "user_properties"}


def _render(problem: Problem) -> web.Response:
    if problem.reason in KEY_MESSAGES or problem.status in (401, 403):
        body: dict[str, Any] = {"code": 400, "error": KEY_MESSAGES.get(
            problem.reason, INVALID_KEY + problem.message)}
        return json_response(body, 400)
    body = {"code": problem.status, "error": problem.message}
    if problem.status == 429:
        body["throttled_events"] = []  # every event: resent after the delay
    match = _INDEXED.match(problem.field)
    if problem.status == 400 and match:
        index, name = int(match.group(1)), match.group(2)
        kind = {"missing": "events_with_missing_fields",
                "id_length": "events_with_invalid_id_lengths"}.get(
            "missing" if problem.description == "is required" else
            "id_length" if problem.reason == "ID_LENGTH" else "", "events_with_invalid_fields")
        body[kind] = {name: [index]}
    elif problem.status == 400 and problem.field in ("api_key", "events"):
        body["missing_field"] = problem.field
    return json_response(body, problem.status, retry_headers(problem))


AMPLITUDE = Dialect(name="amplitude", render=_render)
_invalid = AMPLITUDE.invalid


def _traits(properties: dict[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``user_properties`` as (traits to set, null meaning unset; traits set once)."""
    traits: dict[str, Any] = {}
    once: dict[str, Any] = {}
    for key, value in properties.items():
        if not key.startswith("$"):
            traits[key] = value
        elif key in (SET, SET_ONCE, UNSET):
            if not isinstance(value, dict):
                raise _invalid(f"{path}.{key}", "must be an object")
            if key == SET:
                traits.update(value)
            elif key == SET_ONCE:
                once.update(value)
            else:
                traits.update(dict.fromkeys(value))
        else:
            raise _invalid(f"{path}.{key}", "is an operation trackd does not apply "
                                            "(only $set, $setOnce and $unset)")
    return traits, once


def _check_id(value: str, minimum: int, path: str) -> None:
    if value and len(value) < minimum:
        raise ProblemError(Problem(400, f"{path} must be at least {minimum} characters",
                                   path, "ID_LENGTH", description=""))


def _add(calls: Calls, item: AmplitudeEvent, index: int, minimum: int,
         linked: set[tuple[str, str]]) -> None:
    prefix = f"events[{index}]"
    user, device = item.get("user_id") or "", item.get("device_id") or ""
    _check_id(user, minimum, f"{prefix}.user_id")
    _check_id(device, minimum, f"{prefix}.device_id")
    if not user and not device:
        raise _invalid(f"{prefix}.user_id", "is required")  # Amplitude: "or device_id"
    traits, once = _traits(item.get("user_properties") or {}, f"{prefix}.user_properties")
    name = item["event_type"]
    if user and (traits or once or (device and (user, device) not in linked)):
        linked.add((user, device))
        identify = tracking_pb2.IdentifyRequest(external_id=user, anonymous_id=device)
        path = f"{prefix}.user_properties"
        if traits:
            fill_struct(identify.traits, traits, path, DEPTH_IDENTIFY_TRAITS)
        if once:
            fill_struct(identify.traits_once, once, path, DEPTH_IDENTIFY_TRAITS)
        calls.identifies.append((prefix, IDENTIFY_NAMES, identify))
    if name == IDENTIFY_EVENT or name in IGNORED_EVENTS:
        return
    event = tracking_pb2.Event(name=name, external_user_id=user, anonymous_id=device,
                               event_id=item.get("insert_id") or "")
    if (millis := item.get("time")) is not None:
        if not TIMESTAMP_MIN_SECONDS * 1000 <= millis <= TIMESTAMP_MAX_SECONDS * 1000:
            raise _invalid(f"{prefix}.time", "must be Unix milliseconds within years 1-9999")
        event.timestamp.CopyFrom(timestamp_from_millis(millis))
    properties = item.get("event_properties")
    if properties:
        event.properties_json = properties_json(properties, f"{prefix}.event_properties")
    client = {key: value for key, value in item.items() if key not in EVENT_FIELDS}
    if client:
        event.client_context_json = client_context_json(client)
    calls.events.append((prefix, EVENT_NAMES, event))


@with_config(ConfigDict(extra="ignore"))
class _KeyOnly(TypedDict, total=False):
    api_key: Any


_KEY_ONLY = BodySchema(_KeyOnly)


async def _read(request: web.Request) -> tuple[list[tuple[str, str]], AmplitudeBody]:
    raw = await read_body(request)
    limit = AMPLITUDE_MAX_BODY_BYTES[request.path]
    if len(raw) > limit:
        raise ProblemError(Problem(413, f"Payload too large: at most {limit} bytes",
                                   reason="PAYLOAD_TOO_LARGE"))
    body = try_json(BODY, raw)  # decoded once when it fits
    if body is not None:
        key: Any = body.get("api_key")
    else:  # the key of a body that does not fit: without one, only 401 is said
        loose = try_json(_KEY_ONLY, raw)
        key = loose.get("api_key") if loose is not None else None
    metadata = key_metadata(key if isinstance(key, str) else None, "")
    return metadata, body if body is not None else parse_json(
        BODY, raw, invalid_status=AMPLITUDE.invalid_status)


@AMPLITUDE.handler
async def upload(request: web.Request) -> web.StreamResponse:
    """POST /2/httpapi, /batch: events, stored all or none per 500 (each BatchTrack call)."""
    metadata, body = await _read(request)
    events = body["events"]
    if not events:
        raise _invalid("events", "must hold at least one event")
    if len(events) > AMPLITUDE_MAX_EVENTS:
        raise ProblemError(Problem(413, f"Payload too large: at most {AMPLITUDE_MAX_EVENTS} "
                                        "events a request", reason="PAYLOAD_TOO_LARGE"))
    minimum = (body.get("options") or {}).get("min_id_length")
    if minimum is None:
        minimum = AMPLITUDE_DEFAULT_MIN_ID_LENGTH
    calls = Calls()
    linked: set[tuple[str, str]] = set()
    for index, item in enumerate(events):
        _add(calls, item, index, minimum, linked)
    await send(request, calls, metadata, "events")
    return json_response({"code": 200, "server_upload_time": int(time.time() * 1000),
                          "payload_size_bytes": request.content_length or 0,
                          "events_ingested": len(calls.events)})


def add_routes(app: web.Application) -> None:
    for path in AMPLITUDE_MAX_BODY_BYTES:
        app.router.add_post(path, upload)
