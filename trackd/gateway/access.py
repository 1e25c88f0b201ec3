"""Request ids, HTTP metrics and the HTTP access log: the gateway's outermost middleware.

For every request it

- takes the request id from a sane ``X-Request-Id`` header (1 to 128 of
  ``A-Z a-z 0-9 . _ : = + / @ -``), else makes one (:mod:`trackd.wire.metadata`), and
  returns it as ``X-Request-Id`` on the response; :func:`call_metadata` passes it to the
  server as ``x-request-id`` call metadata, with the dialect as ``trackd-dialect``, so the
  server's access log shows the request's call under the same id (its own line, or its
  entry in a ``TrackEvents`` line's ``calls``) and its event metrics the right source;
- counts it (``trackd_http_requests_total``, ``trackd_http_request_duration_seconds``) by
  dialect, route template (``/api/v1/contacts/{external_id}``, never the raw path),
  method and status;
- logs one line on the ``trackd.access`` logger. Never a key or a body: the line is built
  from the fields below only.

The dialect is set by the dialect's handler wrapper
(:meth:`trackd.gateway.dialects.base.Dialect.handler`); routes of no dialect (``/metrics``) are
``none``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from google.protobuf.message import Message
from prometheus_client import Counter, Histogram

from trackd.gateway.metrics import HTTP_LATENCY, HTTP_REQUESTS
from trackd.wire.metadata import (
    DIALECT_METADATA,
    REQUEST_ID_METADATA,
    new_request_id,
    sane_request_id,
)

access_log = logging.getLogger("trackd.access")

REQUEST_ID_HEADER = "X-Request-Id"

NO_DIALECT = "none"
UNMATCHED_ROUTE = "unmatched"
# The method label takes only these; anything else a client sends is "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Not an HTTP status: the client went away before it was answered (nginx's convention).
CLIENT_CLOSED = 499


@dataclass
class AccessInfo:
    """What the access log line says about one request, filled in as it is handled."""

    request_id: str
    dialect: str = NO_DIALECT
    events: int = 0


ACCESS = web.RequestKey("trackd_access", AccessInfo)
# The same, for log records made while the request is handled (trackd/cli/logs.py adds its id).
_CURRENT: contextvars.ContextVar[AccessInfo | None] = contextvars.ContextVar(
    "trackd_http_request", default=None)


def current_request_id() -> str | None:
    """The id of the HTTP request being handled in this task, if any."""
    info = _CURRENT.get()
    return info.request_id if info is not None else None


def set_dialect(request: web.Request, dialect: str) -> None:
    info = request.get(ACCESS)
    if info is not None:
        info.dialect = dialect


def call_metadata(request: web.Request, message: Message) -> list[tuple[str, str]]:
    """Metadata for one RPC of this request (its id and dialect); counts its events."""
    info = request.get(ACCESS)
    if info is None:
        return []
    info.events += _events(message)
    metadata = [(REQUEST_ID_METADATA, info.request_id)]
    if info.dialect != NO_DIALECT:
        metadata.append((DIALECT_METADATA, info.dialect))
    return metadata


def _events(message: Message) -> int:
    """Events the message asks to store: ``events`` (a batch) or ``event``; none when it
    only validates (Flywheel's identify checks its event before storing it)."""
    fields = message.DESCRIPTOR.fields_by_name
    if "validate_only" in fields and getattr(message, "validate_only", False):
        return 0
    if "events" in fields:
        return len(getattr(message, "events"))  # noqa: B009 - any message with the field
    if "event" in fields:
        return 1 if message.HasField("event") else 0
    return 0


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


# The labelled series by their labels (a bounded set): labels() costs a lock and checks.
_series: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}


@web.middleware
async def access_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    started = time.perf_counter()
    info = AccessInfo(sane_request_id(request.headers.get(REQUEST_ID_HEADER))
                      or new_request_id())
    request[ACCESS] = info
    token = _CURRENT.set(info)
    status = 500  # an exception other handlers did not turn into a response
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = info.request_id
        return response
    except web.HTTPException as exc:  # aiohttp's own answers: 404, 405, 413 ...
        status = exc.status
        exc.headers[REQUEST_ID_HEADER] = info.request_id
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        raise
    finally:
        _CURRENT.reset(token)
        elapsed = time.perf_counter() - started
        route = _route(request)
        method = request.method if request.method in _METHODS else "other"
        labels = (info.dialect, route, method, status)
        series = _series.get(labels)
        if series is None:
            series = _series[labels] = (
                HTTP_REQUESTS.labels(info.dialect, route, method, str(status)),
                HTTP_LATENCY.labels(info.dialect, route, method))
        series[0].inc()
        series[1].observe(elapsed)
        if access_log.isEnabledFor(logging.INFO):
            _log(request, info, route, method, status, elapsed)


def _log(request: web.Request, info: AccessInfo, route: str, method: str, status: int,
         elapsed: float) -> None:
    length = request.content_length
    fields = {
        "kind": "http",
        "request_id": info.request_id,
        "dialect": info.dialect,
        "method": method,
        "route": route,
        "status": status,
        "latency_ms": round(elapsed * 1000, 3),
        "events": info.events,
        "bytes_in": length if length is not None else request.content.total_bytes,
    }
    access_log.info("%s %s %d", method, route, status, extra={"fields": fields})
