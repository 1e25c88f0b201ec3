"""Databuddy: ``POST /track``, ``POST /identify`` and their CORS preflights
(docs/dialects/databuddy.md). This module is the dialect: its limits, messages, request
bodies, credentials and CORS; the handlers are in :mod:`trackd.gateway.dialects.databuddy_handlers`.

``/track`` takes one event object or a JSON array of them (all or nothing) and answers
200 ``{"status":"success","type":"custom_event","count":N}``, N being the events newly
stored (a repeated ``eventId`` is accepted and not counted). ``/identify`` links an
anonymous id to a profile: 200 ``{"status":"success","type":"identify"}``. Every failure
is ``{"status":"error","message":"..."}`` with Databuddy's own messages, chosen from the
server's ErrorInfo reason (``REASON_MESSAGES``), else from the HTTP status; 429 and 503
carry ``Retry-After``.

Credentials, decided by the server (:mod:`trackd.server.websites`): ``Authorization: Bearer
<key>`` or ``x-api-key: <key>`` (scope ``track:events``), or, for browsers, no key and
``?website_id=<uuid>``, forwarded as ``trackd-website-id`` metadata with the page's
``Origin`` as ``trackd-origin``. A browser request (an ``Origin`` and a ``website_id``)
first asks ``WebsiteService.CheckOrigin``, so that every response to an allowed origin,
errors included, carries ``Access-Control-Allow-Origin``; preflights (``OPTIONS``) are
answered only for a ``website_id`` whose origins include the page's. Bodies are parsed
whatever their ``Content-Type``: ``navigator.sendBeacon`` sends ``text/plain``.

Choices the vendor page leaves open:

- An event with neither ``profileId`` nor ``anonymousId`` (a server-side event about no
  one in particular) is stored under a freshly generated anonymous id (a UUID), so it
  is kept and counted like any other.
- ``profileId`` (sent by the official SDK) is the event's user: its external user id.
  ``anonymizeVisitorIds`` is accepted and ignored; unknown fields are ignored.
- ``/identify`` needs an API key (linking ids from a browser with only a website id
  would let any page claim any visitor); its ``websiteId`` is required, as the SDK sends.
- Rate limit: per key; website-id requests are counted per (website, client address).

Rules only Databuddy has live here as data: the field lengths, the property bounds
(50 keys, 128-character keys, 32 KB serialized) and how far in the future a timestamp
may be. Everything else (scopes, websites, origins, dedup) is the server's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,  # pydantic needs these on 3.11
)
from uuid import UUID

from aiohttp import web
from pydantic import StringConstraints, with_config
from typing_extensions import TypedDict

from trackd.gateway.decoding import STRICT_BODY, BodySchema
from trackd.gateway.dialects.base import (
    Dialect,
    Handler,
    call,
    json_response,
    retry_headers,
)
from trackd.gateway.grpc_errors import Problem, ProblemError
from trackd.gateway.settings import WEBSITES
from trackd.v1 import websites_pb2

# --- Databuddy's own limits ------------------------------------------------------------
# Named as Databuddy's: the server's limits of the same kind (trackd/server/validation.py)
# differ, and both apply to a Databuddy request.

DATABUDDY_MAX_NAME_CHARS = 256
DATABUDDY_MAX_NAMESPACE_CHARS = 64
DATABUDDY_MAX_ID_CHARS = 256
DATABUDDY_MAX_SOURCE_CHARS = 64
DATABUDDY_MAX_PROPERTY_KEYS = 50
DATABUDDY_MAX_PROPERTY_KEY_CHARS = 128
DATABUDDY_MAX_PROPERTIES_BYTES = 32 * 1024
# A timestamp later than this past the gateway's clock is refused (clock skew allowed).
DATABUDDY_MAX_FUTURE = timedelta(hours=24)

# --- messages ---------------------------------------------------------------------------

INVALID_BODY = "Invalid request body"
# The server's ErrorInfo reasons (and the gateway's own) -> Databuddy's messages.
REASON_MESSAGES: Mapping[str, str] = {
    "INVALID_ARGUMENT": INVALID_BODY,
    "MALFORMED_BODY": INVALID_BODY,
    "API_KEY_MISSING": "API key or website_id required",
    "API_KEY_INVALID": "Invalid API key",
    "SCOPE_MISSING": "API key missing track:events scope",
    "WEBSITE_NOT_FOUND": "Website not found",
    "ORIGIN_NOT_AUTHORIZED": "Origin not authorized",
    "WEBSITE_SCOPE_MISMATCH": "Website scope mismatch",
    "WEBSITE_NOT_ALLOWED": "API key not authorized for this website",
    "PAYLOAD_TOO_LARGE": "Payload too large",
    "RATE_LIMITED": "Rate limit exceeded",
}
# When no reason says more: by HTTP status.
STATUS_MESSAGES: Mapping[int, str] = {
    400: INVALID_BODY,
    401: "Invalid API key",
    403: "Forbidden",
    404: "Not found",
    409: "Request conflicts with one in progress; retry",
    413: "Payload too large",
    429: "Rate limit exceeded",
    500: "Internal server error",
    503: "Service temporarily unavailable; retry later",
    504: "Request timed out; retry later",
}

# --- CORS -------------------------------------------------------------------------------

PREFLIGHT_HEADERS: Mapping[str, str] = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "content-type, authorization, x-api-key",
    "Access-Control-Max-Age": "86400",
}
_ALLOWED_ORIGIN = web.RequestKey("databuddy_allowed_origin", str)

# --- request bodies ---------------------------------------------------------------------



Name = Annotated[str, StringConstraints(min_length=1, max_length=DATABUDDY_MAX_NAME_CHARS)]
Namespace = Annotated[str, StringConstraints(max_length=DATABUDDY_MAX_NAMESPACE_CHARS)]
Identifier = Annotated[str, StringConstraints(max_length=DATABUDDY_MAX_ID_CHARS)]
Source = Annotated[str, StringConstraints(max_length=DATABUDDY_MAX_SOURCE_CHARS)]
ProfileId = Annotated[str, StringConstraints(min_length=1, max_length=DATABUDDY_MAX_ID_CHARS)]


@with_config(STRICT_BODY)
class DatabuddyEvent(TypedDict):
    """One custom event, alone or as an item of an array."""

    name: Name
    namespace: NotRequired[Namespace | None]
    # Unix milliseconds, or an ISO-8601 string; null or absent: now.
    timestamp: NotRequired[int | float | str | None]
    properties: NotRequired[dict[str, Any] | None]
    anonymousId: NotRequired[Identifier | None]
    sessionId: NotRequired[Identifier | None]
    websiteId: NotRequired[UUID | None]
    source: NotRequired[Source | None]
    eventId: NotRequired[Identifier | None]
    profileId: NotRequired[Identifier | None]
    anonymizeVisitorIds: NotRequired[bool | Literal["auto"] | None]


@with_config(STRICT_BODY)
class DatabuddyIdentify(TypedDict):
    """The identify body, as the official SDK sends it."""

    profileId: ProfileId
    anonymousId: NotRequired[Identifier | None]
    traits: NotRequired[dict[str, Any] | None]
    websiteId: UUID


TRACK_BODY: BodySchema[DatabuddyEvent | list[DatabuddyEvent]] = BodySchema(
    DatabuddyEvent | list[DatabuddyEvent])
IDENTIFY_BODY = BodySchema(DatabuddyIdentify)


# --- the dialect ------------------------------------------------------------------------


def _render(problem: Problem) -> web.Response:
    if problem.reason == "TRACKING_PLAN_VIOLATION":
        message = f"Tracking plan violation: {problem.message}"
    else:
        message = REASON_MESSAGES.get(problem.reason) or STATUS_MESSAGES.get(
            problem.status, "Request failed")
    return json_response({"status": "error", "message": message}, problem.status,
                         retry_headers(problem))


def single_event_field(path: str) -> str:
    """``events[0].properties.plan`` -> ``properties.plan`` (the body was one event)."""
    return path.removeprefix("events[0].")


def _api_key(request: web.Request) -> str:
    """The key from ``Authorization: Bearer <key>``, else from ``x-api-key``."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and key.strip():
        return key.strip()
    return request.headers.get("x-api-key", "").strip()


DATABUDDY = Dialect(
    name="databuddy",
    render=_render,
)


def fail(status: int, reason: str) -> ProblemError:
    """Databuddy's answers name no field: the reason picks the message."""
    return ProblemError(Problem(status, REASON_MESSAGES.get(reason, ""), reason=reason))


def invalid() -> ProblemError:
    return fail(400, "INVALID_ARGUMENT")


def with_cors(handler: Handler) -> Handler:
    """Add CORS headers to every response to an origin the website allows."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        origin = request.get(_ALLOWED_ORIGIN)
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        return response

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


_CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def query_website_id(request: web.Request) -> str:
    """The ``website_id`` query parameter, canonical; one that is no UUID names no website."""
    if "website_id" not in request.query:
        return ""
    value = request.query["website_id"]
    if _CANONICAL_UUID.fullmatch(value) is None:  # empty, braces, urn:, no dashes: no id
        raise fail(404, "WEBSITE_NOT_FOUND")
    return str(UUID(value))


async def check_origin(request: web.Request, website_id: str, origin: str) -> None:
    """Ask the server whether ``origin`` may track for the website; remember the answer."""
    await call(request, request.app[WEBSITES].CheckOrigin,
               websites_pb2.CheckOriginRequest(website_id=website_id, origin=origin), [])
    request[_ALLOWED_ORIGIN] = origin


async def credentials_metadata(request: web.Request) -> list[tuple[str, str]]:
    """The caller's credentials as call metadata (checked for presence and form only)."""
    website_id = query_website_id(request)
    origin = request.headers.get("Origin", "")
    if origin and not (origin.isascii() and origin.isprintable()):
        raise fail(403, "ORIGIN_NOT_AUTHORIZED")
    if website_id and origin:
        await check_origin(request, website_id, origin)
    metadata: list[tuple[str, str]] = []
    key = _api_key(request)
    if key:
        if not (key.isascii() and key.isprintable()):
            raise fail(401, "API_KEY_INVALID")
        metadata.append(("authorization", f"Bearer {key}"))
    elif request.headers.get("Authorization", "").strip():
        raise fail(401, "API_KEY_INVALID")
    elif not website_id:
        raise fail(401, "API_KEY_MISSING")
    if website_id:
        metadata.append(("trackd-website-id", website_id))
        if origin:
            metadata.append(("trackd-origin", origin))
    return metadata
