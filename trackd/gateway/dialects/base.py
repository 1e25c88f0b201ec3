"""What every dialect shares: a handler's opening and closing steps, and the RPC call.

:class:`Dialect` holds a vendor's conventions as data, and does for every route what is
the same in each: reads the body against the route's schema (:meth:`Dialect.body`),
makes the problems of a field that fails validation (:meth:`Dialect.invalid`), and
turns whatever a route raises (a :class:`~trackd.gateway.grpc_errors.ProblemError`, a value
protobuf cannot carry, an RPC's status) into the vendor's envelope. A dialect module
keeps only its data, its parsing into RPC requests and its rendering.

Rate limits are the server's (trackd/server/ratelimit.py): each call names its dialect in
``trackd-dialect`` metadata and the client's address in ``trackd-client-address``, and the
server's ``ratelimit-policy`` / ``ratelimit`` trailing metadata become the IETF
``RateLimit-Policy`` / ``RateLimit`` headers of the answer, whether it succeeded or not.
The gateway keeps no limit state.

A tracking plan's verdict on events that were stored (observe mode) is in the answer:
the dialect's body stays as it is, and ``Trackd-Plan-Violations: <count>`` is added when
the server's response names any violation (:data:`PLAN_VIOLATIONS_HEADER`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import orjson
from aiohttp import web
from google.protobuf.message import Message

from trackd.gateway.access import call_metadata, set_dialect
from trackd.gateway.body import parse_json, read_body
from trackd.gateway.convert import UnencodableValue
from trackd.gateway.decoding import BodySchema
from trackd.gateway.grpc_errors import Problem, ProblemError, problem_from_rpc_error
from trackd.gateway.metrics import RATE_LIMITED
from trackd.gateway.settings import GATEWAY_SETTINGS, GatewaySettings
from trackd.v1 import tracking_pb2
from trackd.wire.metadata import CLIENT_ADDRESS_METADATA, DIALECT_METADATA

ResponseT = TypeVar("ResponseT", bound=Message)
BodyT = TypeVar("BodyT")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status,
                        content_type="application/json", headers=headers)


def retry_headers(problem: Problem) -> dict[str, str] | None:
    """``Retry-After`` when the problem says when to come back (every 429 and 503 does)."""
    return {"Retry-After": str(problem.retry_after)} if problem.retry_after else None


def _same_path(path: str) -> str:
    return path


_DIALECT = web.RequestKey("trackd_dialect", str)
_RATE_LIMIT_FIELDS = web.RequestKey("trackd_rate_limit_fields", list)
# The server's trailing metadata -> the headers the gateway copies it to.
RATE_LIMIT_HEADERS: Mapping[str, str] = {"ratelimit-policy": "RateLimit-Policy",
                                         "ratelimit": "RateLimit"}


# How many tracking plan violations the stored events of a request had (observe mode).
PLAN_VIOLATIONS_HEADER = "Trackd-Plan-Violations"
_PLAN_VIOLATIONS = web.RequestKey("trackd_plan_violations", int)
# How the server's field paths read in a request's body, when the body decides it rather
# than the dialect (a batch split into a BatchTrack of its events and Identify calls of the
# rest; a Databuddy single event); without it the dialect's field_name applies.
FieldName = Callable[[str], str]
FIELD_NAME: web.RequestKey[FieldName] = web.RequestKey(
    "trackd_field_name", FieldName)  # type: ignore[arg-type]  # a callable type, not a class


def _plan_violations(response: Message) -> int:
    if isinstance(response, tracking_pb2.TrackEventResponse):
        return len(response.violations)
    if isinstance(response, tracking_pb2.BatchTrackResponse):
        return sum(len(event.violations) for event in response.event_violations)
    return 0


def _keep_rate_limit_fields(request: web.Request, metadata: Any) -> None:
    fields = [(key, value) for key, value in metadata or ()
              if key in RATE_LIMIT_HEADERS and isinstance(value, str)]
    if fields:
        request[_RATE_LIMIT_FIELDS] = fields


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

    def invalid(self, field: str, description: str) -> ProblemError:
        """``field`` fails validation: "<field> <description>", at :attr:`invalid_status`."""
        return ProblemError(Problem.invalid(self.invalid_status, field, description))

    def unencodable(self, error: UnencodableValue) -> Problem:
        """A value protobuf cannot carry (a time, a number, nesting), as a field problem."""
        return Problem.invalid(self.invalid_status, error.path, error.description)

    async def body(self, request: web.Request, schema: BodySchema[BodyT]) -> BodyT:
        """The request's body read (trackd.gateway.body's limits) and parsed against
        ``schema``; a Problem at :attr:`invalid_status` when it does not fit."""
        return parse_json(schema, await read_body(request),
                          invalid_status=self.invalid_status)

    def handler(self, fn: Handler) -> Handler:
        """Wrap a route: its calls name this dialect, every failure is in its envelope
        (a refused body also closes the connection: see trackd.gateway.errors_middleware), and
        the server's rate-limit fields become headers."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            request[_DIALECT] = self.name
            set_dialect(request, self.name)
            try:
                response = await fn(request)
            except ProblemError as exc:
                response = self._failure(exc.problem)
            except UnencodableValue as exc:  # a time or value protobuf cannot carry
                response = self._failure(self.unencodable(exc))
            except grpc.aio.AioRpcError as exc:
                _keep_rate_limit_fields(request, exc.trailing_metadata())
                response = self._failure(problem_from_rpc_error(
                    exc, self.status_overrides, request.get(FIELD_NAME, self.field_name)))
            for key, value in request.get(_RATE_LIMIT_FIELDS, ()):
                response.headers[RATE_LIMIT_HEADERS[key]] = value
            if violations := request.get(_PLAN_VIOLATIONS):
                response.headers[PLAN_VIOLATIONS_HEADER] = str(violations)
            return response

        wrapped.__name__ = fn.__name__
        wrapped.__doc__ = fn.__doc__
        return wrapped

    def _failure(self, problem: Problem) -> web.Response:
        if problem.status == 429:  # the server's rate limit (RESOURCE_EXHAUSTED)
            RATE_LIMITED.labels(self.name).inc()
        return self.render(problem)


async def call(
    request: web.Request,
    method: Callable[..., Awaitable[ResponseT]],
    message: Message,
    metadata: Sequence[tuple[str, str]],
) -> ResponseT:
    """Call one RPC with the gateway's deadline, forwarding the caller's credentials,
    the request's id and dialect (trackd/gateway/access.py) and the client's address (what the
    server's rate limit counts website-id requests by)."""
    settings: GatewaySettings = request.app[GATEWAY_SETTINGS]
    extra = call_metadata(request, message)
    if (dialect := request.get(_DIALECT)) and all(k != DIALECT_METADATA for k, _ in extra):
        extra.append((DIALECT_METADATA, dialect))
    if request.remote:
        extra.append((CLIENT_ADDRESS_METADATA, request.remote))
    rpc: Any = method(message, metadata=[*metadata, *extra],
                      timeout=settings.rpc_timeout_seconds)
    response: ResponseT = await rpc  # a grpc.aio call: awaited, then its metadata read
    _keep_rate_limit_fields(request, await rpc.trailing_metadata())
    if violations := _plan_violations(response):
        request[_PLAN_VIOLATIONS] = request.get(_PLAN_VIOLATIONS, 0) + violations
    return response


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
            reason="API_KEY_MISSING"))
    return [("authorization", f"Bearer {key.strip()}")]
