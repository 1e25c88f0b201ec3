"""What the dialects of analytics SDKs share (Segment and RudderStack, and the vendors
of contracts' "more doors"): the write key an SDK sends as HTTP Basic, the library's own
fields kept apart from the event's properties, and a request's messages sent as the RPCs
that store them.

An SDK's batch mixes messages that are events (track, page, screen) with messages that
change a user (identify, alias, group). :class:`Calls` gathers both, each under the
place it holds in the body (``batch[7]``), and :func:`send` stores the events with
``BatchTrack`` (in calls of at most :data:`~trackd.wire.limits.MAX_BATCH_EVENTS`, when
the vendor allows more in one request) and then makes one ``Identify`` call per user
change, in the body's order. A field the server refuses is named as the body names it
(``batch[7].userId``), whichever RPC refused it.

Imports: the gateway's shared steps (:mod:`trackd.gateway.dialects.base`) and the generated
messages; no dialect module.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from trackd.gateway.convert import UnencodableValue
from trackd.gateway.dialects.base import FIELD_NAME, call
from trackd.gateway.grpc_errors import Problem, ProblemError
from trackd.gateway.settings import TRACKING
from trackd.v1 import tracking_pb2
from trackd.wire.limits import MAX_BATCH_EVENTS

_RPC_PATH = re.compile(r"(?:events\[(\d+)\]\.?)?([A-Za-z_]*)(.*)", re.DOTALL)


def basic_key(request: web.Request) -> str | None:
    """The key of ``Authorization: Basic base64(<key>:)`` (the user name; the password
    is ignored) or ``Authorization: Bearer <key>``; None when there is no Authorization
    header. A header of another form, or one that does not decode, is a 401."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return value.strip()
    if scheme == "basic":
        try:
            user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if user:
            return user
    raise ProblemError(Problem(
        401, "malformed Authorization header: expected Basic base64(<write key>:)",
        reason="API_KEY_INVALID"))


def key_metadata(key: str | None, missing: str) -> list[tuple[str, str]]:
    """``key`` as call metadata; a 401 saying ``missing`` when there is none. Only the
    form is checked here: the server decides whether the key is valid."""
    if not key:
        raise ProblemError(Problem(401, missing, reason="API_KEY_MISSING"))
    if not (key.isascii() and key.isprintable()):
        raise ProblemError(Problem(401, "invalid API key", reason="API_KEY_INVALID"))
    return [("authorization", f"Bearer {key}")]


def client_context_json(values: Mapping[str, Any]) -> bytes:
    """The library's own fields as ``Event.client_context_json`` (sorted keys, so a
    resent message is the same request); UnencodableValue naming the first field that
    holds what JSON bytes cannot (an integer beyond 64 bits), a client's error."""
    try:
        return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        for key in sorted(values):
            try:
                orjson.dumps(values[key])
            except orjson.JSONEncodeError:
                raise UnencodableValue(key, "holds an integer beyond 64 bits") from None
        raise


@dataclass
class Calls:
    """A request's messages as RPC messages, each with where it sits in the body and
    how the RPC's field names read there (``external_user_id`` -> ``userId``)."""

    events: list[tuple[str, Mapping[str, str], tracking_pb2.Event]] = field(
        default_factory=list)
    identifies: list[tuple[str, Mapping[str, str], tracking_pb2.IdentifyRequest]] = field(
        default_factory=list)


def _renamer(places: list[tuple[str, Mapping[str, str]]],
             whole: str) -> Callable[[str], str]:
    """Server field paths (``events[3].name``, or ``external_id`` for one message) ->
    the body's (``batch[8].event``); ``events`` alone is the request's ``whole``."""

    def rename(path: str) -> str:
        match = _RPC_PATH.fullmatch(path)
        if match is None:  # pragma: no cover - the pattern matches every string
            return path
        index, name, rest = match.groups()
        if index is None and len(places) != 1:
            return whole if name == "events" else path
        prefix, names = places[int(index or 0)]
        body_name = names.get(name, name)
        if not prefix:
            return f"{body_name}{rest}"
        return f"{prefix}.{body_name}{rest}" if body_name else f"{prefix}{rest}"

    return rename


async def send(request: web.Request, calls: Calls, metadata: list[tuple[str, str]],
               whole: str) -> int:
    """Check ``calls``' Identify calls, store its events, then make the Identify calls;
    how many events were new.

    Each BatchTrack call is all or nothing; when a request needs more than one, those
    before a failure stay stored, and the answer is the failure: the SDK resends the
    request, and the event ids (the vendor's message ids) store each event once."""
    stored = 0
    tracking = request.app[TRACKING]
    # Every user change is checked first, so that a refused one leaves nothing stored.
    for prefix, names, identify in calls.identifies:
        request[FIELD_NAME] = _renamer([(prefix, names)], whole)
        checked = tracking_pb2.IdentifyRequest()
        checked.CopyFrom(identify)
        checked.validate_only = True
        await call(request, tracking.Identify, checked, metadata)
    for start in range(0, len(calls.events), MAX_BATCH_EVENTS):
        chunk = calls.events[start:start + MAX_BATCH_EVENTS]
        request[FIELD_NAME] = _renamer([(p, n) for p, n, _ in chunk], whole)
        response = await call(request, tracking.BatchTrack, tracking_pb2.BatchTrackRequest(
            events=[event for _, _, event in chunk]), metadata)
        stored += response.stored_count
    for prefix, names, identify in calls.identifies:
        request[FIELD_NAME] = _renamer([(prefix, names)], whole)
        await call(request, tracking.Identify, identify, metadata)
    return stored
