"""Every error answer in the envelope of the dialect that owns the path.

A dialect's handlers render their own Problems; what reaches a client without passing
through one is rendered here, by path, in the same envelope: aiohttp's 404 and 405, an
exception nobody caught (500, the only case that logs a traceback), and the HTTP
parser's 400/414/431 (from :mod:`trackd.gateway.http_protocol`). Paths, by owner:

- ``/api/v1/contacts``, ``/api/v1/contacts/...`` and ``/api/v1/audiences...``: Cueflow;
- ``/api/v1/events`` (shared) and every other ``/api/v1/...``: VibeFollow (the shared
  path's default, as in :mod:`trackd.gateway.dialects.shared_paths`);
- Segment's routes (``/v1/batch``, ``/v1/track``, ... exactly): Segment; every other
  ``/v1/...``: Flywheel; ``/track`` and ``/identify``: Databuddy; PostHog's
  ``/batch/``, ``/capture/``, ``/e/`` and ``/i/v0/e/``: PostHog; ``/2/httpapi`` and
  ``/batch``: Amplitude; ``/import`` and ``/engage``: Mixpanel (``/track``, shared,
  Databuddy's);
- anything else: ``{"error": {"code": "not_found", "message": "..."}}``.

A client that went away mid-body (:class:`trackd.gateway.body.ClientGone`) gets nothing (it
is gone): the access log and metrics say 499, at INFO, with no traceback; it is not a
server error.

A refused request whose body was not read to its end (413, 415, a body that is not the
encoding it claims) is answered with ``Connection: close``: aiohttp then discards what is
left of the body for at most its lingering time (:data:`trackd.gateway.body.HANDLER_ARGS`)
without decoding it, and the connection goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from trackd.gateway.access import CLIENT_CLOSED
from trackd.gateway.body import ClientGone
from trackd.gateway.dialects.amplitude import AMPLITUDE, AMPLITUDE_MAX_BODY_BYTES
from trackd.gateway.dialects.base import Handler, json_response
from trackd.gateway.dialects.cueflow import CUEFLOW
from trackd.gateway.dialects.databuddy import DATABUDDY
from trackd.gateway.dialects.flywheel import FLYWHEEL
from trackd.gateway.dialects.mixpanel import MIXPANEL
from trackd.gateway.dialects.posthog import POSTHOG
from trackd.gateway.dialects.posthog import ROUTES as POSTHOG_PATHS
from trackd.gateway.dialects.segment import SEGMENT, SEGMENT_PATHS
from trackd.gateway.dialects.vibefollow import VIBEFOLLOW
from trackd.gateway.grpc_errors import Problem

log = logging.getLogger("trackd.gateway")

Render = Callable[[Problem], web.Response]

MESSAGES = {
    404: "no such route",
    405: "method not allowed",
    500: "internal error",
}


# Statuses that refuse a body; other early answers (401, 429) let aiohttp discard it.
REFUSED_BODY = (400, 413, 415)


def render_plain(problem: Problem) -> web.Response:
    """The envelope of a path no dialect owns."""
    headers = {"Retry-After": str(problem.retry_after)} if problem.retry_after else None
    return json_response({"error": {"code": problem.code, "message": problem.message}},
                         problem.status, headers)


def renderer_for(path: str) -> Render:
    """The envelope of the dialect owning ``path``."""
    if path == "/api/v1/contacts" or path.startswith(("/api/v1/contacts/",
                                                      "/api/v1/audiences")):
        return CUEFLOW.render
    if path == "/api/v1" or path.startswith("/api/v1/"):
        return VIBEFOLLOW.render
    if path in SEGMENT_PATHS:
        return SEGMENT.render
    if path in POSTHOG_PATHS:
        return POSTHOG.render
    if path in AMPLITUDE_MAX_BODY_BYTES:
        return AMPLITUDE.render
    if path in ("/import", "/engage"):
        return MIXPANEL.render
    if path == "/v1" or path.startswith("/v1/"):
        return FLYWHEEL.render
    if path in ("/track", "/identify"):
        return DATABUDDY.render
    return render_plain


def render_http_error(request: web.BaseRequest, exc: web.HTTPException) -> web.Response:
    """An aiohttp HTTP error (status 400 or more) in the path's envelope; never its text,
    which can quote the request (``Unknown Expect: ...``)."""
    message = MESSAGES.get(exc.status) or exc.reason.lower()
    if exc.status == 405:
        message = f"method {request.method} not allowed; allowed: " \
            f"{exc.headers.get('Allow', '')}"
    response = renderer_for(request.path)(Problem(exc.status, message))
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    log.info("refused %s %s: %d %s", request.method, request.path, exc.status, message)
    return response


@web.middleware
async def error_envelopes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's HTTP errors and uncaught exceptions, in the path's envelope."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = render_http_error(request, exc)
    except asyncio.CancelledError:
        raise
    except ClientGone:
        # Nobody to answer: this response is never sent, only counted and logged as 499.
        response = web.Response(status=CLIENT_CLOSED)
        response.force_close()
        return response
    except Exception:
        # A bug: the one case with a traceback in the log (never the body or headers).
        log.exception("bug: %s %s raised", request.method, request.path)
        response = renderer_for(request.path)(Problem(500, MESSAGES[500]))
        response.force_close()
        return response
    if response.status in REFUSED_BODY and not request.content.is_eof():
        # Refused before the body was read to its end: never read (or inflate) the rest.
        response.force_close()
        log.info("refused %s %s: %d before reading its body", request.method,
                 request.path, response.status)
    return response
