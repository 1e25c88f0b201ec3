"""Paths more than one vendor owns: ``POST /api/v1/events`` (VibeFollow and Cueflow) and
``POST /track`` (Databuddy and Mixpanel).

``POST /track``: a form body (``Content-Type: application/x-www-form-urlencoded``, or a
body starting with ``data=``), as every Mixpanel SDK sends, is Mixpanel's
(:data:`trackd.gateway.dialects.mixpanel.track`); anything else (JSON, a text/plain beacon) is
Databuddy's (:func:`trackd.gateway.dialects.databuddy_handlers.track`), and so is a body too large
to read or not in the encoding it claims unless its Content-Type is a form: Databuddy's
envelope is the path's default, as it was its first owner.

``POST /api/v1/events``:

The one route reads the body once (aiohttp keeps it: the chosen dialect's handler reads
the same bytes again without I/O) and picks the dialect by the body's shape, before any
authentication error is rendered, so a client always gets its own vendor's envelope
(docs/dialects/index.md, "The shared path"):

- ``externalId`` / ``eventKey`` -> Cueflow (:func:`trackd.gateway.dialects.cueflow.track_event`);
- ``external_user_id`` / ``name`` -> VibeFollow
  (:func:`trackd.gateway.dialects.vibefollow.track_event`);
- a JSON object carrying more of one pair's keys than of the other's goes to that dialect
  (which then names any missing field); an object with none of the four keys, as many of
  each pair, or JSON that is not an object, gets VibeFollow's 422 naming both accepted
  shapes (after VibeFollow's auth check, so an anonymous caller still gets a 401);
- a body that is not JSON goes to Cueflow (400 in its envelope) when it quotes one of
  Cueflow's keys and none of VibeFollow's, else to VibeFollow (400); a body too large to
  read gets VibeFollow's 413: "unless the body is Cueflow-shaped", VibeFollow's envelope
  is the path's default.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ConfigDict, ValidationError, with_config
from typing_extensions import TypedDict

from trackd.gateway.body import read_body
from trackd.gateway.decoding import BodySchema
from trackd.gateway.dialects import cueflow, databuddy, databuddy_handlers, mixpanel, vibefollow
from trackd.gateway.dialects.base import Handler, bearer_metadata
from trackd.gateway.grpc_errors import Problem, ProblemError

EVENTS_PATH = "/api/v1/events"
# The keys that say which vendor wrote a body.
CUEFLOW_KEYS = ("externalId", "eventKey")
VIBEFOLLOW_KEYS = ("external_user_id", "name")
NEITHER_SHAPE = (
    "request body must be one of the two event shapes accepted at /api/v1/events: "
    "VibeFollow {external_user_id, name, properties?} or "
    "Cueflow {externalId, eventKey, properties?}"
)


@with_config(ConfigDict(extra="ignore"))
class _ShapeKeys(TypedDict, total=False):
    """Only the identifying keys; the rest of the body is parsed but not kept."""

    externalId: Any
    eventKey: Any
    external_user_id: Any
    name: Any


_SHAPE = BodySchema(_ShapeKeys)


def _quotes(raw: bytes, keys: tuple[str, ...]) -> bool:
    return any(f'"{key}"'.encode() in raw for key in keys)


@vibefollow.VIBEFOLLOW.handler
async def neither_shape(request: web.Request) -> web.StreamResponse:
    """A body that is JSON but neither dialect's event."""
    bearer_metadata(request)
    raise ProblemError(Problem(vibefollow.VIBEFOLLOW.invalid_status, NEITHER_SHAPE,
                               reason="INVALID_ARGUMENT"))


def handler_for(raw: bytes) -> Handler:
    """The handler a body of this shape belongs to."""
    try:
        keys = _SHAPE.validate_json(raw)
    except ValidationError as exc:
        if exc.errors(include_url=False)[0]["type"] != "json_invalid":
            return neither_shape  # JSON, but not an object
        # Not JSON: the dialect whose keys it quotes answers 400 in its own envelope.
        if _quotes(raw, CUEFLOW_KEYS) and not _quotes(raw, VIBEFOLLOW_KEYS):
            return cueflow.track_event
        return vibefollow.track_event
    cueflow_score = sum(key in keys for key in CUEFLOW_KEYS)
    vibefollow_score = sum(key in keys for key in VIBEFOLLOW_KEYS)
    if cueflow_score > vibefollow_score:
        return cueflow.track_event
    if vibefollow_score > cueflow_score:
        return vibefollow.track_event
    return neither_shape


async def track_event(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/events: hand the request to the dialect its body belongs to."""
    try:
        raw = await read_body(request)
    except ProblemError as exc:
        return vibefollow.VIBEFOLLOW.render(exc.problem)
    return await handler_for(raw)(request)


TRACK_PATH = "/track"


async def track(request: web.Request) -> web.StreamResponse:
    """POST /track: Mixpanel's form bodies to Mixpanel, every other body to Databuddy."""
    form = request.content_type == "application/x-www-form-urlencoded"
    try:
        raw = await read_body(request)
    except ProblemError as exc:
        return (mixpanel.MIXPANEL if form else databuddy.DATABUDDY).render(exc.problem)
    handler = mixpanel.track if mixpanel.is_form(request.content_type, raw) \
        else databuddy_handlers.track
    return await handler(request)


def add_routes(app: web.Application) -> None:
    app.router.add_post(EVENTS_PATH, track_event)
    app.router.add_post(TRACK_PATH, track)
