"""The HTTP connection: aiohttp's, with the parser's refusals made safe.

aiohttp answers a request its parser refuses (bad method, request line or version, a
header with a control character, over 8190 bytes or past 128 headers, a bad chunk size,
Transfer-Encoding with Content-Length, no Host) itself: in plain text quoting the raw
bytes it choked on, which can hold the caller's Authorization header, after logging the
same with a traceback. And when the refused request arrived in the same read as valid
ones pipelined before it, those are dropped unanswered. :class:`GatewayRequestHandler`
changes three things:

- the answer is JSON in the envelope of the dialect owning the refused request's path
  (:func:`trackd.gateway.errors_middleware.renderer_for`), with a fixed reason by kind of error
  (never the parser's message) and ``Connection: close``. The path is read from the
  refused request's own request line, whatever the connection carried before: the kept
  bytes are parsed again from the start, a body of known length fed whole, so the offset
  where the refused request begins is exact (a request right after a body does not start
  a line). Past the kept bytes, the failing read's first request line is taken when the
  previous request was complete (a client that waits for each answer), else its last;
- the log gets one WARNING line with that reason; a traceback only for a real bug;
- valid requests before the refused one are answered first: the connection's first
  :data:`REPLAY_BYTES` are kept, and on a parse error they are parsed again, a line at a
  time, by a fresh parser, which yields exactly the messages the first one lost (the same
  bytes from the same start). Past that many bytes nothing is kept; then, as before, only
  the refusal is answered and the connection closes.

Run the gateway with :class:`GatewayRunner` (``trackd serve`` does) to get it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.http_parser import HttpRequestParser
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo

from trackd.gateway.errors_middleware import render_http_error, renderer_for
from trackd.gateway.front_door import neutral
from trackd.gateway.grpc_errors import Problem

log = logging.getLogger("trackd.gateway")

# Kept per connection, to answer requests pipelined before a malformed one.
REPLAY_BYTES = 64 * 1024
# A request line's method and path.
_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ (/[^\s?#]*)")
# The same anywhere in a buffer (after a body, a request line need not start a line).
_ANY_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ (/[^\s?#]*)[^\s]* HTTP/")


def refusal(exc: BaseException | None, status: int) -> tuple[int, str]:
    """The status and a fixed reason for a parser error: never the parser's own text,
    which quotes the request's bytes."""
    text = str(exc or "").lower()
    if isinstance(exc, LineTooLong):
        if "status line" in text or "request line" in text:
            return 414, "request line too long"
        return 431, "a header field is too long (limit 8190 bytes)"
    if "too many headers" in text:
        return 431, "too many header fields (limit 128)"
    if isinstance(exc, BadHttpMethod):
        return 400, "invalid request method"
    if isinstance(exc, BadStatusLine):
        return 400, "invalid request line or HTTP version"
    if isinstance(exc, InvalidURLError):
        return 400, "invalid request target"
    if "header value char" in text:
        return 400, "invalid character in a header value"
    if isinstance(exc, InvalidHeader) or "invalid header" in text:
        return 400, "invalid header"
    for needle, reason in (
        ("transfer-encoding", "Transfer-Encoding together with Content-Length, or an "
                              "invalid Transfer-Encoding"),
        ("chunk", "invalid chunked encoding"),
        ("content-length", "invalid Content-Length"),
        ("host", "missing or invalid Host header"),
        ("duplicate", "a header that may appear once appears twice"),
        ("header", "invalid header"),
    ):
        if needle in text:
            return 400, reason
    return status, "malformed HTTP request"


class _ReplayingParser:
    """The connection's parser; on an error, recovers the messages it lost and finds the
    refused request's own request line."""

    def __init__(self, handler: GatewayRequestHandler, inner: Any,
                 make: Any) -> None:
        self._handler = handler
        self._inner = inner
        self._make = make
        self._history = bytearray()
        self._keeping = True
        self._delivered = 0
        self._last_payload: StreamReader | None = None
        self._broken = False
        # Whether the last message delivered before the feed under way was complete: if
        # so, a refused request in a failing feed starts at that feed's first byte (a
        # client that waits for each answer), not in an earlier feed.
        self._feed_at_boundary = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def feed_data(self, data: bytes) -> tuple[Sequence[Any], bool, bytes]:
        if self._broken:
            return (), False, b""
        self._feed_at_boundary = self._last_payload is None or self._last_payload.is_eof()
        if self._keeping:
            if len(self._history) + len(data) <= REPLAY_BYTES:
                self._history += data
            else:
                self._keeping = False
                self._history = bytearray()
        try:
            messages, upgraded, tail = self._inner.feed_data(data)
        except HttpProcessingError as exc:
            self._broken = True
            return self._after_error(exc, bytes(data)), False, b""
        self._note(messages)
        return messages, upgraded, tail

    def _note(self, messages: Sequence[Any]) -> None:
        self._delivered += len(messages)
        if messages:
            self._last_payload = messages[-1][1]

    def _after_error(self, exc: HttpProcessingError, data: bytes) -> list[Any]:
        recovered: list[Any] = []
        path = None
        if self._keeping:
            recovered, start = self._replay()
            path = _target_at(bytes(self._history), start)
        if path is None:
            path = _refused_target(data, at_start=self._feed_at_boundary)
        if self._last_payload is not None and not self._last_payload.is_eof():
            # A request whose body the error cut short: its handler's read fails (400).
            self._last_payload.set_exception(RequestPayloadError("malformed body"))
        status, reason = refusal(exc, 400)
        self._handler.refused = (path, status, reason)
        return [*recovered, (_ErrInfo(status=status, exc=exc, message=reason),
                             EMPTY_PAYLOAD)]

    def _replay(self) -> tuple[list[Any], int]:
        """The complete messages after the ones delivered, parsed again from the start,
        and the offset where the first incomplete one (the refused request) begins."""
        parser = self._make()
        history = bytes(self._history)
        found: list[Any] = []
        start = at = 0
        complete = 0
        while at < len(history):
            step = _next_piece(history, at, found)
            try:
                messages, _upgraded, _tail = parser.feed_data(history[at:step])
            except HttpProcessingError:
                break
            at = step
            found.extend(messages)
            if len(found) > complete and found[-1][1].is_eof():
                # Every message so far is complete: the next one begins here.
                complete, start = len(found), at
        lost = []
        for message, payload in found[self._delivered:]:
            if not payload.is_eof():
                break  # the refused request itself, or one cut short by it
            lost.append((message, payload))
        return lost, start


def _next_piece(history: bytes, at: int, found: list[Any]) -> int:
    """Where the next piece to replay ends: the rest of a body of known length exactly
    (so a request right after a body is fed from its own first byte), else one line."""
    if found:
        message, payload = found[-1]
        length = message.headers.get("Content-Length")
        if not payload.is_eof() and length is not None and length.isdigit():
            left: int = int(length) - payload.total_bytes
            return min(len(history), at + max(1, left))
    end = history.find(b"\n", at)
    return len(history) if end < 0 else end + 1


def _target_at(source: bytes, start: int) -> str | None:
    """The path in the request line at ``start`` (after any empty lines); ``/`` (no
    dialect's) when that line names none; None when there is no line there."""
    while source.startswith((b"\r\n", b"\n"), start):
        start += 2 if source.startswith(b"\r\n", start) else 1
    if start >= len(source):
        return None
    end = source.find(b"\n", start)
    line = source[start:] if end < 0 else source[start:end]
    match = _REQUEST_LINE.match(line) or _ANY_REQUEST_LINE.search(line)
    return match.group(1).decode("latin-1") if match else "/"


def _refused_target(data: bytes, *, at_start: bool) -> str:
    """The refused request's path when the connection's history was not kept: the request
    line the failing bytes begin with, else the last one they hold; ``/`` if none."""
    if at_start:
        path = _target_at(data, 0)
        if path is not None:
            return path
    lines = _ANY_REQUEST_LINE.findall(data)
    return lines[-1].decode("latin-1") if lines else "/"


class GatewayRequestHandler(RequestHandler):
    """aiohttp's connection handler, with the parser's refusals in the path's envelope."""

    def __init__(self, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.refused: tuple[str, int, str] | None = None
        loop = kwargs["loop"]

        def make() -> Any:
            return HttpRequestParser(
                self, loop, kwargs.get("read_bufsize", 2**16),
                max_line_size=kwargs.get("max_line_size", 8190),
                max_field_size=kwargs.get("max_field_size", 8190),
                max_headers=kwargs.get("max_headers", 128),
                payload_exception=RequestPayloadError,
                auto_decompress=kwargs.get("auto_decompress", True))

        self._parser = _ReplayingParser(self, self._parser, make)  # type: ignore[assignment]

    def handle_error(self, request: Any, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send another")
        if status != 500:
            path, status, reason = self.refused or ("/", *refusal(exc, status))
            log.warning("refused a malformed request from %s (path %s): %d %s",
                        request.remote, path, status, reason)
        else:
            path, reason = request.path, "internal error"
            log.error("bug: %s %s failed in aiohttp", request.method, request.path,
                      exc_info=exc)
        response = renderer_for(path)(Problem(status, reason))
        response.force_close()
        return neutral(response)


class GatewayServer(web.Server):
    """Makes a :class:`GatewayRequestHandler` per connection."""

    def __call__(self) -> RequestHandler:
        return GatewayRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` serving connections with :class:`GatewayRequestHandler`, and
    rendering the HTTP errors aiohttp raises before the middlewares run (an unknown
    ``Expect`` header's 417) in the path's envelope too."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        app_handler = server.request_handler

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            try:
                return await app_handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                return neutral(render_http_error(request, exc))

        return GatewayServer(handle, request_factory=server.request_factory,
                             handler_cancellation=server.handler_cancellation,
                             loop=server._loop, **server._kwargs)
