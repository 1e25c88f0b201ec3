"""Every protocol-level refusal, on every route, in the envelope of the dialect owning the
route's path, decided from the refused request's own request line: each case runs on a
kept-alive connection whose previous request, answered, was another dialect's (the
connection's earlier bytes must not choose the envelope).

A table: each route of the app (:data:`ROUTES`, checked against the app's router) x each
refusal of the HTTP layer (:data:`REFUSALS`: the parser's, and aiohttp's 417), over a raw
socket to the gateway as ``trackd serve`` runs it. Each answer: the exact status and body,
JSON, the connection closed after a parser refusal, one log line without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.gateway.hostile_harness import (
    CLIENT_TIMEOUT,
    HOST,
    Answer,
    gateway_port,
    request,
    stored_counts,
)
from trackd.gateway.app import create_app
from trackd.storage import Store

__all__ = ["gateway_port"]  # fixture


def vibefollow(status: int, reason: str) -> Any:
    code = {400: "invalid_request", 417: "error",
            431: "request_header_fields_too_large"}[status]
    return {"errors": [{"code": code, "message": reason}]}


def cueflow(status: int, reason: str) -> Any:
    return {"error": f"Invalid request body: {reason}" if status == 400 else reason}


def flywheel(status: int, reason: str) -> Any:
    if status == 400:
        return {"error": f"Validation failed: {reason}", "code": "VALIDATION_ERROR"}
    code = {417: "ERROR", 431: "REQUEST_HEADER_FIELDS_TOO_LARGE"}[status]
    return {"error": reason, "code": code}


def databuddy(status: int, reason: str) -> Any:
    return {"status": "error",
            "message": "Invalid request body" if status == 400 else "Request failed"}


def plain(status: int, reason: str) -> Any:
    code = {400: "invalid_request", 417: "error",
            431: "request_header_fields_too_large"}[status]
    return {"error": {"code": code, "message": reason}}


def _code(status: int) -> str:
    return {400: "invalid_request", 417: "error",
            431: "request_header_fields_too_large"}[status]


def segment(status: int, reason: str) -> Any:
    return {"success": False, "code": _code(status), "message": reason}


def posthog(status: int, reason: str) -> Any:
    kind = "validation_error" if status == 400 else "invalid_request"
    return {"type": kind, "code": _code(status), "detail": reason, "attr": None}


def amplitude(status: int, reason: str) -> Any:
    return {"code": status, "error": reason}


def mixpanel(status: int, reason: str) -> Any:
    return {"status": 0, "error": reason}


Envelope = Callable[[int, str], Any]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # a concrete path of the route
    template: str
    owner: Envelope


ROUTES = [
    Route("POST", "/api/v1/events", "/api/v1/events", vibefollow),
    Route("POST", "/api/v1/events/batch", "/api/v1/events/batch", vibefollow),
    Route("POST", "/api/v1/users", "/api/v1/users", vibefollow),
    Route("POST", "/api/v1/users/bulk", "/api/v1/users/bulk", vibefollow),
    Route("POST", "/v1/events", "/v1/events", flywheel),
    Route("POST", "/api/v1/contacts", "/api/v1/contacts", cueflow),
    Route("GET", "/api/v1/contacts/c1", "/api/v1/contacts/{external_id}", cueflow),
    Route("PATCH", "/api/v1/contacts/c1", "/api/v1/contacts/{external_id}", cueflow),
    Route("DELETE", "/api/v1/contacts/c1", "/api/v1/contacts/{identifier}", cueflow),
    Route("POST", "/api/v1/audiences/evaluate", "/api/v1/audiences/evaluate", cueflow),
    Route("POST", "/api/v1/contacts/c1/match", "/api/v1/contacts/{external_id}/match",
          cueflow),
    Route("POST", "/track", "/track", databuddy),
    Route("OPTIONS", "/track", "/track", databuddy),
    Route("POST", "/identify", "/identify", databuddy),
    Route("OPTIONS", "/identify", "/identify", databuddy),
    # Segment's, by exact path; the rest of /v1/* stays Flywheel's.
    *(Route("POST", path, path, segment) for path in (
        "/v1/batch", "/v1/track", "/v1/page", "/v1/screen", "/v1/identify", "/v1/group",
        "/v1/alias")),
    # PostHog's (with their slashes); /batch without one is Amplitude's.
    *(Route("POST", path, path, posthog) for path in ("/batch/", "/capture/", "/e/",
                                                       "/i/v0/e/")),
    Route("POST", "/2/httpapi", "/2/httpapi", amplitude),
    Route("POST", "/batch", "/batch", amplitude),
    # Mixpanel's own; its POST /track is the shared path above (Databuddy's by default).
    Route("POST", "/import", "/import", mixpanel),
    Route("POST", "/engage", "/engage", mixpanel),
    Route("GET", "/healthz", "/healthz", plain),
    Route("GET", "/readyz", "/readyz", plain),
    Route("GET", "/openapi.json", "/openapi.json", plain),
    Route("GET", "/docs", "/docs", plain),
    Route("GET", "/docs/assets", "/docs/assets", plain),
    Route("GET", "/metrics", "/metrics", plain),
    # The front door and the console: trackd's own pages and streams, no vendor's.
    Route("GET", "/", "/", plain),
    Route("GET", "/console", "/console", plain),
    Route("GET", "/console/assets", "/console/assets", plain),
    Route("GET", "/console/api/overview", "/console/api/overview", plain),
    Route("GET", "/console/api/events", "/console/api/events", plain),
    Route("GET", "/console/api/decisions", "/console/api/decisions", plain),
]


def raw(method: str, target: str, *headers: str, body: bytes = b"{}",
        version: str = "HTTP/1.1") -> bytes:
    head = "\r\n".join([f"{method} {target} {version}", *headers])
    return head.encode("latin-1") + b"\r\n\r\n" + body


@dataclass(frozen=True)
class Refusal:
    id: str
    build: Callable[[str, str], bytes]
    status: int
    reason: str
    closes: bool = True


CL = "Content-Length: 2"
REFUSALS = [
    Refusal("no Host", lambda m, p: raw(m, p, CL), 400, "missing or invalid Host header"),
    Refusal("duplicate Content-Type", lambda m, p: raw(
        m, p, "Host: h", "Content-Type: application/json", "Content-Type: text/plain", CL),
            400, "a header that may appear once appears twice"),
    Refusal("invalid Content-Length", lambda m, p: raw(m, p, "Host: h", "Content-Length: 2x"),
            400, "invalid Content-Length"),
    Refusal("lower-case method", lambda m, p: raw(m.lower(), p, "Host: h", CL),
            400, "invalid request method"),
    Refusal("unknown method", lambda m, p: raw("FROB", p, "Host: h", CL),
            400, "invalid request method"),
    Refusal("non-UTF-8 bytes in the target", lambda m, p: raw(m, p + "?q=\xff\xfe",
                                                               "Host: h", CL),
            400, "invalid request target"),
    Refusal("bad HTTP version", lambda m, p: raw(m, p, "Host: h", CL, version="HTTP/9.x"),
            400, "invalid request line or HTTP version"),
    Refusal("control character in a header", lambda m, p: raw(m, p, "Host: h",
                                                                "X-A: b\x7fc", CL),
            400, "invalid character in a header value"),
    Refusal("bad chunk size", lambda m, p: raw(m, p, "Host: h", "Transfer-Encoding: chunked",
                                               body=b"zz\r\n{}\r\n0\r\n\r\n"),
            400, "invalid chunked encoding"),
    Refusal("Transfer-Encoding with Content-Length", lambda m, p: raw(
        m, p, "Host: h", "Transfer-Encoding: chunked", "Content-Length: 7",
        body=b"2\r\n{}\r\n0\r\n\r\n"),
            400, "Transfer-Encoding together with Content-Length, or an invalid "
                 "Transfer-Encoding"),
    Refusal("header over 8190 bytes", lambda m, p: raw(m, p, "Host: h", "X-Big: " + "x" * 8200,
                                                       CL),
            431, "a header field is too long (limit 8190 bytes)"),
    Refusal("129 headers", lambda m, p: raw(m, p, "Host: h",
                                            *(f"X-H{i}: 1" for i in range(129)), CL),
            431, "too many header fields (limit 128)"),
    Refusal("unknown Expect", lambda m, p: raw(m, p, "Host: h", "Expect: 100-nope", CL),
            417, "expectation failed", closes=False),
]


def previous_request(route: Route, key: str) -> bytes:
    """A good request of a dialect other than the route's owner, with a body."""
    if route.owner is databuddy:
        return request("POST", "/v1/events", orjson.dumps(
            {"event": {"event": "before", "user_id": "u1"}}),
            headers={"Authorization": key, "Auth-Type": "api",
                     "Content-Type": "application/json"})
    return request("POST", "/track", orjson.dumps({"name": "before"}), headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})


def _read_answer(sock: socket.socket, buffer: bytes) -> tuple[Answer, bytes]:
    """One answer from ``sock`` (``closed``: it says the connection ends, by HTTP/1.0 or
    ``Connection: close``), and the bytes read past it."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer; got {buffer!r}")
        buffer += chunk
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    ends = lines[0].startswith("HTTP/1.0") or headers.get("connection", "").lower() == "close"
    return Answer(int(lines[0].split()[1]), headers, buffer[:length], ends), buffer[length:]


def _two_requests(port: int, first: bytes, second: bytes) -> tuple[Answer, Answer]:
    """``first``, its answer, then ``second`` on the same connection, and its answer
    (``closed``: the server said so and closed the connection after it; else the
    connection still answers a third request)."""
    with socket.create_connection((HOST, port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(first)
        before, rest = _read_answer(sock, b"")
        assert not rest
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(second)
        after, rest = _read_answer(sock, rest)
        if after.closed:
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):
                    pass  # until the server closes it, else a timeout fails the test
        else:
            sock.sendall(request("GET", "/healthz"))
            alive, _ = _read_answer(sock, rest)
            assert alive.status == 200
        return before, after


def test_the_table_has_every_route() -> None:
    served = {(route.method, route.resource.canonical)
              for route in create_app().router.routes()
              if route.method != "HEAD" and route.resource is not None}
    assert {(route.method, route.template) for route in ROUTES} == served


@pytest.mark.parametrize("refusal", REFUSALS, ids=[refusal.id for refusal in REFUSALS])
async def test_refusal_in_the_owners_envelope_after_another_dialects_request(
        refusal: Refusal, gateway_port: int, key: str, store: Store,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    wrong: list[str] = []
    for route in ROUTES:
        before, after = await asyncio.to_thread(
            _two_requests, gateway_port, previous_request(route, key),
            refusal.build(route.method, route.path))
        assert before.status == 200, before.body
        expected = (refusal.status, route.owner(refusal.status, refusal.reason),
                    refusal.closes)
        got = (after.status, after.json(), after.closed)
        if got != expected or not after.headers["content-type"].startswith(
                "application/json"):
            wrong.append(f"{route.method} {route.path}: {got} != {expected}")
    assert not wrong, "\n".join(wrong)
    # Only the previous requests stored anything (one event each).
    assert await stored_counts(store) == {"events": len(ROUTES), "users": 0}
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert record.levelno < logging.ERROR, record.getMessage()
        assert key not in record.getMessage()


@pytest.mark.parametrize("refusal", REFUSALS[:3], ids=[refusal.id for refusal in REFUSALS[:3]])
async def test_refusal_in_the_owners_envelope_past_the_replay_window(
        refusal: Refusal, gateway_port: int, key: str) -> None:
    """The connection carried more than the bytes kept for replaying (64 KiB) first."""
    event = {"external_user_id": "u1", "name": "before", "properties": {"pad": "x" * 200}}
    big = orjson.dumps({"events": [event] * 400})
    assert len(big) > 64 * 1024
    first = request("POST", "/api/v1/events/batch", big, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    for route in (ROUTES[4], ROUTES[8], ROUTES[11]):  # Flywheel, Cueflow, Databuddy
        before, after = await asyncio.to_thread(
            _two_requests, gateway_port, first, refusal.build(route.method, route.path))
        assert before.status == 202, before.body
        assert (after.status, after.json()) == (
            refusal.status, route.owner(refusal.status, refusal.reason))
