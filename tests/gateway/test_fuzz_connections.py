"""The fuzz run of tests/gateway/test_fuzz.py, at the connection level (its routes, seeds,
envelopes and gateway; a module of its own for size).

- :func:`test_fuzz_refusals_after_another_dialects_request`: on one kept-alive
  connection, a good request of some dialect (answered, or pipelined in the same write),
  then a request of any route mutated so the HTTP layer refuses it (or, for random bytes
  in a header line, maybe not). The first answer is its own dialect's; the second is no
  5xx and is in the envelope of the dialect owning the second request's path.
- :func:`test_fuzz_client_gone_mid_body`: a request of any body route, cut anywhere in its
  body by a reset or a close. The access log gets one 499 line at INFO for it; no line
  is a 5xx, an ERROR or a traceback; nothing is stored.

Seeded and bounded as the rest of the fuzz run (``derandomize``, :data:`EXAMPLES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.fuzz_routes import ROUTES, Route, envelope_for
from tests.gateway.hostile_harness import HOST, exchange, stored_counts
from tests.gateway.test_fuzz import Fuzzed, port
from trackd.storage import Store

__all__ = ["port"]  # fixture

EXAMPLES = 300
DISCONNECTS = 80
DEADLINE_MS = 10000
CONNECTION_WAIT = 30.0  # seconds for the access line of a connection that went away
DIALECTED = [route for route in ROUTES if route.path != "/nowhere"]
BODY_ROUTES = [route for route in DIALECTED if route.seed is not None]


def _head_and_body(raw: bytes) -> tuple[list[bytes], bytes]:
    head, body = raw.split(b"\r\n\r\n", 1)
    return head.split(b"\r\n"), body


def _join(lines: list[bytes], body: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _drop(lines: list[bytes], name: bytes) -> list[bytes]:
    return [line for line in lines if not line.lower().startswith(name.lower() + b":")]


def _with_target(lines: list[bytes], change: Callable[[bytes], bytes]) -> list[bytes]:
    method, target, version = lines[0].split(b" ", 2)
    return [b" ".join((method, change(target), version)), *lines[1:]]


# Each takes the request's head lines and body and returns the mutated request's bytes.
MUTATIONS: dict[str, Callable[[list[bytes], bytes, Any], bytes]] = {
    "no Host": lambda lines, body, draw: _join(_drop(lines, b"Host"), body),
    "duplicate Content-Type": lambda lines, body, draw: _join(
        [*lines, b"Content-Type: text/plain"], body),
    "invalid Content-Length": lambda lines, body, draw: _join(
        [*_drop(lines, b"Content-Length"), b"Content-Length: " + draw(st.sampled_from(
            [b"-1", b"1x", b"0x10", b"", b"1 2", b"99999999999999999999999"]))], body),
    "lower-case method": lambda lines, body, draw: _join(
        [lines[0].split(b" ", 1)[0].lower() + b" " + lines[0].split(b" ", 1)[1],
         *lines[1:]], body),
    "unknown method": lambda lines, body, draw: _join(
        [draw(st.sampled_from([b"FROB", b"GE T", b"P\x00ST", b"\xffPOST"])) + b" "
         + lines[0].split(b" ", 1)[1], *lines[1:]], body),
    "non-UTF-8 target": lambda lines, body, draw: _join(_with_target(
        lines, lambda target: target + b"?q=" + draw(st.sampled_from(
            [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc"]))), body),
    "bad version": lambda lines, body, draw: _join(
        [lines[0].rsplit(b" ", 1)[0] + b" " + draw(st.sampled_from(
            [b"HTTP/9.x", b"HTTP/1", b"HTP/1.1", b"HTTP/1.1 x"])), *lines[1:]], body),
    "control character": lambda lines, body, draw: _join(
        [*lines, b"X-A: a" + draw(st.sampled_from([b"\x7f", b"\x00", b"\x01"])) + b"b"],
        body),
    "Transfer-Encoding and Content-Length": lambda lines, body, draw: _join(
        [*lines, b"Transfer-Encoding: chunked"], body),
    "header over 8190 bytes": lambda lines, body, draw: _join(
        [*lines, b"X-Big: " + b"x" * 8200], body),
    "129 headers": lambda lines, body, draw: _join(
        [*lines, *(b"X-H%d: 1" % i for i in range(129))], body),
    "random bytes in a header line": lambda lines, body, draw: _join(
        [*lines[:-1], draw(st.binary(min_size=1, max_size=12)), lines[-1]], body),
}


def good_request(route: Route, key: str) -> bytes:
    return Fuzzed(route, route.method, route.path, orjson.dumps(route.seed)
                  if route.seed is not None else b"", "", "right", ()).raw(key)




def _answer(sock: socket.socket, buffer: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {buffer!r}"
        buffer += chunk
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip() for n, _, v in
               (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buffer += chunk
    return int(lines[0].split()[1]), headers, buffer[:length], buffer[length:]


def _two(port: int, first: bytes, second: bytes, pipelined: bool) -> list[tuple[int, bytes]]:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        answers = []
        rest = b""
        if pipelined:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(first + second)
        else:
            sock.sendall(first)
            status, _, body, rest = _answer(sock, b"")
            answers.append((status, body))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(second)
        while len(answers) < 2:
            status, _, body, rest = _answer(sock, rest)
            answers.append((status, body))
        return answers


@settings(max_examples=EXAMPLES, deadline=DEADLINE_MS, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(before=st.sampled_from(DIALECTED), after=st.sampled_from(DIALECTED),
       mutation=st.sampled_from(sorted(MUTATIONS)), pipelined=st.booleans(), data=st.data())
async def test_fuzz_refusals_after_another_dialects_request(
        before: Route, after: Route, mutation: str, pipelined: bool, data: st.DataObject,
        port: int, key: str) -> None:
    lines, body = _head_and_body(good_request(after, key))
    mutated = MUTATIONS[mutation](lines, body, data.draw)
    answers = await asyncio.to_thread(_two, port, good_request(before, key), mutated,
                                      pipelined)
    (status, first), (refusal, second) = answers
    assert status < 500, first
    assert before.envelope(orjson.loads(first), status), first
    assert refusal < 500, second
    assert envelope_for(after.path)(orjson.loads(second), refusal), (mutation, second)
    if mutation != "random bytes in a header line":
        assert refusal in (400, 431), (mutation, refusal, second)


class _AccessLines(logging.Handler):
    """The access lines' statuses as they come, and the trackd records at ERROR or above
    or with a traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []
        self.bad: list[str] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info is not None:
            self.bad.append(record.getMessage())
        status = getattr(record, "fields", {}).get("status")
        if record.name == "trackd.access" and status is not None:
            self.statuses.append(status)
            self.changed.set()


@pytest.fixture
def access_lines(caplog: pytest.LogCaptureFixture) -> Any:
    handler = _AccessLines()
    root = logging.getLogger("trackd")
    root.addHandler(handler)
    caplog.set_level(logging.INFO, logger="trackd.access")  # whatever a test before set
    caplog.set_level(logging.INFO, logger="trackd")
    yield handler
    root.removeHandler(handler)


def _cut(port: int, raw: bytes, keep: int, reset: bool) -> None:
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.sendall(raw[:keep])
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@settings(max_examples=DISCONNECTS, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(BODY_ROUTES), at=st.floats(0.0, 0.99), reset=st.booleans())
async def test_fuzz_client_gone_mid_body(route: Route, at: float, reset: bool, port: int,
                                         key: str, store: Store,
                                         access_lines: _AccessLines) -> None:
    before = await stored_counts(store)
    raw = good_request(route, key)
    head, body = raw.split(b"\r\n\r\n", 1)
    keep = len(head) + 4 + int(len(body) * at)
    seen = len(access_lines.statuses)
    access_lines.changed.clear()
    await asyncio.to_thread(_cut, port, raw, keep, reset)
    async with asyncio.timeout(CONNECTION_WAIT):
        while len(access_lines.statuses) == seen:
            await access_lines.changed.wait()
            access_lines.changed.clear()
    assert access_lines.statuses[seen:] == [499]
    assert access_lines.bad == []
    assert await stored_counts(store) == before
    # The gateway still answers on a new connection.
    assert (await exchange(port, good_request(DIALECTED[0], key)))[0].status == 202
