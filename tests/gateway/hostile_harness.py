"""The gateway as ``trackd serve`` runs it (GatewayRunner, on port 0), and a raw HTTP/1.1
client that sends bytes exactly as written.

The client is a blocking socket in a worker thread, with its own timeout: it keeps
counting while the gateway, in the test's event loop, is busy, so "answered within the
client's timeout" holds even when a request would block the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp import web

from trackd.gateway.app import create_app
from trackd.gateway.http_protocol import GatewayRunner
from trackd.gateway.settings import GatewaySettings
from trackd.server.app import TrackdServer
from trackd.storage import Store

HOST = "127.0.0.1"
CLIENT_TIMEOUT = 5.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after this answer

    def json(self) -> Any:
        return orjson.loads(self.body)


def _exchange(port: int, raw: bytes, responses: int, timeout: float) -> list[Answer]:
    answers: list[Answer] = []
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        # Refused before it was all sent: read what was answered.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        buffer = b""
        eof = False

        def fill() -> bool:
            nonlocal buffer, eof
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                eof = True
                return False
            buffer += chunk
            return True

        while len(answers) < responses:
            while b"\r\n\r\n" not in buffer:
                if not fill():
                    return answers
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(buffer) < length:
                if not fill():
                    break
            body, buffer = buffer[:length], buffer[length:]
            answers.append(Answer(int(lines[0].split()[1]), headers, body, False))
            version = lines[0].split()[0]
        if answers[-1].headers.get("connection", "").lower() == "close" or \
                version == "HTTP/1.0":
            while fill():
                pass
            answers[-1].closed = eof and not buffer
    return answers


async def exchange(port: int, raw: bytes, responses: int = 1) -> list[Answer]:
    """Send ``raw`` on a new connection; the answers (up to ``responses``), each within
    CLIENT_TIMEOUT of the last byte before it."""
    return await asyncio.to_thread(_exchange, port, raw, responses, CLIENT_TIMEOUT)


def request(method: str, path: str, body: bytes = b"", *,
            headers: dict[str, str] | None = None, host: bool = True,
            version: str = "HTTP/1.1", length: bool = True) -> bytes:
    lines = [f"{method} {path} {version}"]
    if host:
        lines.append(f"Host: {HOST}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def good_event(key: str) -> bytes:
    body = orjson.dumps({"external_user_id": "u_good", "name": "good",
                         "event_id": uuid.uuid4().hex})
    return request("POST", "/api/v1/events", body, headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})


def gzip_bomb(gibibytes: int = 4) -> bytes:
    """About 4 MB of gzip (under the 5 MB limit) inflating to ``gibibytes`` GiB of zeros.

    Built from one byte-aligned compressed block repeated, so it costs nothing to make;
    its trailer is wrong, which a decoder only finds after inflating it all."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31, 9, zlib.Z_RLE)
    zeros = bytes(1 << 20)
    head = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    return head + block * (gibibytes * 1024 - 1) + comp.flush()


def nested(depth: int) -> dict[str, Any]:
    """``depth`` objects, one inside the other."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@contextlib.asynccontextmanager
async def serve_gateway(settings: GatewaySettings,
                        app: web.Application | None = None) -> AsyncIterator[int]:
    """The gateway (or ``app``) on a port of its own, served by GatewayRunner; yields the
    port."""
    runner = GatewayRunner(app or create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def gateway_port(server: TrackdServer) -> AsyncIterator[int]:
    async with serve_gateway(GatewaySettings(grpc_target=f"127.0.0.1:{server.port}")) as port:
        yield port


async def stored_counts(store: Store) -> dict[str, int]:
    """How many documents each collection holds for project acme."""
    return {name: await store.db[name].count_documents({"project_id": "acme"})
            for name in ("events", "users")}
