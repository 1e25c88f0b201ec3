"""The HTTP client webhooks are POSTed with: aiohttp's, behind a resolver that refuses
forbidden addresses at every connection, without redirects, reading at most a few KB of
any answer.
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from trackd.outbound.addresses import UrlRefused, parse_url, refused_address


def _version() -> str:
    try:
        return importlib.metadata.version("trackd")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


USER_AGENT = f"trackd/{_version()}"


class CheckedResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses a name with a forbidden address, so what a
    name resolves to at connection time is checked (DNS rebinding)."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            why = refused_address(result["host"])
            if why is not None:
                raise OSError(f"refused address: {host} resolves to {why}")
        return results

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class Answer:
    """How an attempt went: ``status`` 0 when there was no answer (``error`` says why)."""

    status: int
    error: str
    retry_after: str | None
    latency: float

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


class Sender:
    """One client session for a deliverer's lanes."""

    def __init__(self, timeout_seconds: float, max_response_bytes: int,
                 allow_private: bool) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_bytes = max_response_bytes
        self._allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=None if self._allow_private else CheckedResolver(),
                use_dns_cache=False, limit=0, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=False,
                auto_decompress=False, headers={"user-agent": USER_AGENT})
        return self._session

    async def post(self, url: str, headers: dict[str, str], payload: bytes) -> Answer:
        started = time.perf_counter()

        def failed(error: str) -> Answer:
            return Answer(0, error, None, time.perf_counter() - started)

        try:
            host, _ = parse_url(url)
            if not self._allow_private and _is_literal(host):
                # aiohttp connects to an address literal without asking the resolver.
                why = refused_address(host.strip("[]"))
                if why is not None:
                    return failed(f"refused address: {why}")
        except UrlRefused as exc:
            return failed(f"refused URL: {exc}")
        try:
            async with self._client().post(url, data=payload, headers=headers,
                                           allow_redirects=False) as response:
                await response.content.read(self._max_bytes)
                status = response.status
                error = ""
                if 300 <= status < 400:
                    error = "redirect not followed"
                elif not 200 <= status < 300:
                    error = f"HTTP {status}"
                return Answer(status, error, response.headers.get("retry-after"),
                              time.perf_counter() - started)
        except TimeoutError:
            return failed("timeout")
        except aiohttp.ClientConnectorError as exc:
            return failed(_connect_error(exc))
        except (aiohttp.ClientError, OSError) as exc:
            return failed(f"{type(exc).__name__}: {exc}"[:300])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _connect_error(exc: aiohttp.ClientConnectorError) -> str:
    cause: Any = exc.os_error
    text = str(cause) if cause is not None else str(exc)
    if "refused address" in text:
        return text[:300]
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect: {text}"[:300]


