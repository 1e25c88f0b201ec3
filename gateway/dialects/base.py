"""What every dialect shares: the RPC call, and turning failures into its envelope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import orjson
from aiohttp import web
from google.protobuf.message import Message

from gateway.access import call_metadata, set_dialect
from gateway.convert import UnencodableValue
from gateway.grpc_errors import Problem, ProblemError, problem_from_rpc_error
from gateway.metrics import RATE_LIMITED
from gateway.ratelimit import RateLimit
from gateway.settings import GATEWAY_SETTINGS, RATE_LIMITER, GatewaySettings

ResponseT = TypeVar("ResponseT", bound=Message)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status,
                        content_type="application/json", headers=headers)


def _same_path(path: str) -> str:
    return path


def _authorization_header(request: web.Request) -> str:
    return request.headers.get("Authorization", "")


@dataclass(frozen=True)
class Dialect:
    """A vendor's conventions: its status overrides, field naming and error envelope."""

    name: str
    render: Callable[[Problem], web.Response]
    status_overrides: Mapping[grpc.StatusCode, int] = field(default_factory=dict)
    field_name: Callable[[str], str] = _same_path

    @property
    def invalid_status(self) -> int:
        """The HTTP status this dialect gives a request that fails validation."""
        return self.status_overrides.get(grpc.StatusCode.INVALID_ARGUMENT, 400)

    credential: Callable[[web.Request], str] = _authorization_header
    # The vendor's documented limit; GatewaySettings.rate_limits overrides it.
    default_rate_limit: RateLimit | None = None

    def handler(self, fn: Handler) -> Handler:
        """Wrap a route: the dialect's rate limit first, every failure in its envelope
        (a refused body also closes the connection: see gateway.errors_middleware)."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            set_dialect(request, self.name)
            try:
                self._check_rate_limit(request)
                return await fn(request)
            except ProblemError as exc:
                return self._failure(exc.problem)
            except UnencodableValue as exc:  # a time or value protobuf cannot carry
                return self._failure(Problem(self.invalid_status, str(exc), exc.path,
                                             "INVALID_ARGUMENT"))
            except grpc.aio.AioRpcError as exc:
                return self._failure(
                    problem_from_rpc_error(exc, self.status_overrides, self.field_name))

        wrapped.__name__ = fn.__name__
        wrapped.__doc__ = fn.__doc__
        return wrapped

    def _failure(self, problem: Problem) -> web.Response:
        if problem.status == 429:  # a rate limit, the gateway's or the server's
            RATE_LIMITED.labels(self.name).inc()
        return self.render(problem)

    def _check_rate_limit(self, request: web.Request) -> None:
        limit = request.app[GATEWAY_SETTINGS].rate_limits.get(self.name, self.default_rate_limit)
        if limit is None:
            return
        credential = self.credential(request)
        if not credential:
            return  # no key: the request fails authentication anyway
        wait = request.app[RATE_LIMITER].acquire(self.name, credential, limit)
        if wait is not None:
            raise ProblemError(Problem(
                429, f"rate limit exceeded: {limit} per key; retry in {wait} s",
                reason="RATE_LIMITED", retry_after=wait,
                grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED))


async def call(
    request: web.Request,
    method: Callable[..., Awaitable[ResponseT]],
    message: Message,
    metadata: Sequence[tuple[str, str]],
) -> ResponseT:
    """Call one RPC with the gateway's deadline, forwarding the caller's credentials and
    the request's id and dialect (gateway/access.py)."""
    settings: GatewaySettings = request.app[GATEWAY_SETTINGS]
    return await method(message, metadata=[*metadata, *call_metadata(request, message)],
                        timeout=settings.rpc_timeout_seconds)


def bearer_metadata(request: web.Request) -> list[tuple[str, str]]:
    """The caller's ``Authorization: Bearer <key>`` as call metadata.

    Only the header's presence and form are checked here, before the body is read, so
    an anonymous caller learns nothing about the body; the server decides whether the
    key is valid, and what it may do.
    """
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ProblemError(Problem(
            401, "missing or malformed Authorization header: expected 'Bearer <key>'",
            reason="API_KEY_MISSING", grpc_code=grpc.StatusCode.UNAUTHENTICATED))
    return [("authorization", f"Bearer {key.strip()}")]
