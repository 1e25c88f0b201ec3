"""Per-call metrics and the gRPC access log: a grpc.aio server interceptor.

:class:`ObservabilityInterceptor` goes first in the server's interceptor list, outside
:class:`server.errors.ErrorInterceptor`, so it sees every call's final status, including
the INVALID_ARGUMENT of a message that cannot be decoded. For each unary call it

- takes the request id from ``x-request-id`` call metadata (the gateway sends its own, so
  both halves log the same id) when it is sane, else makes one (uuid4 hex);
- keeps a :class:`CallInfo` in a context variable, which the code handling the call fills
  in: :mod:`server.auth` the project once the caller is authenticated, the tracking
  service the number of events;
- counts the call (``trackd_grpc_requests_total``, ``trackd_grpc_request_duration_seconds``)
  and a failed write call's events (``trackd_events_total``, outcome rejected or failed);
- logs one line on the ``trackd.access`` logger: no key, no message body.

Streaming calls (health Watch, reflection) pass through unobserved.

A call carried inside ``TrackingService.TrackEvents`` (server/services/carried.py) is
observed as the call it stands for: :func:`observe_carried` gives it its own
:class:`CallInfo` (its own request id and source, from its carried metadata), counts it in
``trackd_grpc_requests_total`` as ``TrackEvent`` with its own code, counts its events by
its own source and logs its own access line. The TrackEvents call around it is counted
and logged once more, as ``TrackEvents`` (its events: 0), so dashboards of TrackEvent
calls and of events per source read the same whether or not the gateway coalesces.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from server import metrics

access_log = logging.getLogger("trackd.access")

# Call metadata the gateway sends (gateway/access.py names the same keys; a test checks).
REQUEST_ID_METADATA = "x-request-id"
DIALECT_METADATA = "trackd-dialect"
# A request id from outside is used only if it is this (bounded, nothing a log line or
# header could be confused by); gateway/access.py applies the same rule.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:=+/@-]{1,128}")

@dataclass
class CallInfo:
    """What the access log line and metrics say about one call."""

    service: str
    method: str
    request_id: str
    source: str  # the REST dialect that sent it, or "grpc"
    bytes_in: int
    project: str = ""
    events: int = 0
    # Whether ``events`` were to be written (not a validate_only call).
    writes_events: bool = False


_CALL: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar(
    "trackd_call", default=None)


def current_call() -> CallInfo | None:
    """The call being handled in this task, if any."""
    return _CALL.get()


def note_project(project_id: str) -> None:
    """The call is authenticated as ``project_id`` (for its access log line)."""
    info = _CALL.get()
    if info is not None:
        info.project = project_id


def note_events(count: int, *, writes: bool) -> None:
    """The call carries ``count`` events, to be stored unless it is ``validate_only``."""
    info = _CALL.get()
    if info is not None:
        info.events = count
        info.writes_events = writes


def note_written(new: list[bool]) -> None:
    """The call's events are durable; per event, whether it was new (else a duplicate)."""
    info = _CALL.get()
    stored = sum(new)
    metrics.count_events(info.source if info else metrics.GRPC_SOURCE, stored,
                         len(new) - stored)
    if info is not None:
        info.writes_events = False  # settled: a later failure of the call stores nothing less


@dataclass
class CarriedOutcome:
    """How a carried call ended: set by the code running it (default: INTERNAL)."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


@contextmanager
def observe_carried(service: str, method: str, metadata: Sequence[tuple[str, str]],
                    bytes_in: int) -> Iterator[CarriedOutcome]:
    """Observe one carried call as a call of its own (see the module docstring).

    Run it inside its own task (asyncio.gather does): the CallInfo is a context variable.
    """
    started = time.perf_counter()
    request_id, source = _source_of(metadata)
    info = CallInfo(service=service, method=method,
                    request_id=request_id or uuid.uuid4().hex, source=source,
                    bytes_in=bytes_in)
    token = _CALL.set(info)
    outcome = CarriedOutcome()
    try:
        yield outcome
    except BaseException:
        outcome.code = grpc.StatusCode.CANCELLED
        raise
    finally:
        _CALL.reset(token)
        elapsed = time.perf_counter() - started
        metrics.GRPC_REQUESTS.labels(service, method, outcome.code.name).inc()
        metrics.GRPC_LATENCY.labels(service, method).observe(elapsed)
        if info.writes_events and info.events and outcome.code != grpc.StatusCode.OK:
            metrics.count_unstored_events(info.source, outcome.code, info.events)
        _log(info, outcome.code, elapsed)


def sane_request_id(value: str | None) -> str | None:
    return value if value is not None and REQUEST_ID_PATTERN.fullmatch(value) else None


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str | None, str]:
    return _source_of(context.invocation_metadata() or ())


def _source_of(metadata: Sequence[tuple[str, Any]]) -> tuple[str | None, str]:
    request_id: str | None = None
    source = metrics.GRPC_SOURCE
    for key, value in metadata:
        if key == REQUEST_ID_METADATA and isinstance(value, str):
            request_id = sane_request_id(value)
        elif key == DIALECT_METADATA and value in metrics.SOURCES:
            source = value
    return request_id, source


Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped
    """Request ids, call metrics and one access log line per unary call."""

    def __init__(self) -> None:
        # By full method name (only methods the server has): service, method, and the
        # OK and latency series.
        self._series: dict[str, tuple[str, str, Counter, Histogram]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # unknown methods: grpc answers UNIMPLEMENTED, no label made
        inner: Handler = handler.unary_unary
        # grpc.aio runs interceptors for every call: the method's series are made once.
        series = self._series.get(handler_call_details.method)
        if series is None:
            service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
            series = self._series[handler_call_details.method] = (
                service, method, metrics.GRPC_REQUESTS.labels(service, method, "OK"),
                metrics.GRPC_LATENCY.labels(service, method))
        service, method, answered_ok, latency = series

        def finish(info: CallInfo, code: grpc.StatusCode, started: float) -> None:
            elapsed = time.perf_counter() - started
            (answered_ok if code == grpc.StatusCode.OK
             else metrics.GRPC_REQUESTS.labels(service, method, code.name)).inc()
            latency.observe(elapsed)
            if info.writes_events and info.events and code != grpc.StatusCode.OK:
                metrics.count_unstored_events(info.source, code, info.events)
            _log(info, code, elapsed)

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            request_id, source = _metadata(context)
            info = CallInfo(
                service=service, method=method, request_id=request_id or uuid.uuid4().hex,
                source=source,
                bytes_in=len(request) if isinstance(request, bytes) else request.ByteSize())
            token = _CALL.set(info)
            recorder = _AbortRecorder(context, lambda code: finish(info, code, started))
            try:
                response = await inner(request, recorder)
                recorder.record(context.code() or grpc.StatusCode.OK)
                return response
            except grpc.aio.AbortError:
                recorder.record(context.code() or grpc.StatusCode.UNKNOWN)
                raise
            except BaseException:  # CancelledError: the client went away
                recorder.record(context.code() or grpc.StatusCode.CANCELLED)
                raise
            finally:
                _CALL.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class _AbortRecorder:
    """The call's context, recording the call before an abort sends its status.

    grpc.aio sends the status inside ``abort``, before the AbortError reaches the
    interceptor; recording first means a client that has its answer finds the call in
    ``/metrics`` and the log already, as it does for a successful call.
    """

    def __init__(self, context: grpc.aio.ServicerContext[Any, Any],
                 on_answer: Callable[[grpc.StatusCode], None]) -> None:
        self._context = context
        self._on_answer: Callable[[grpc.StatusCode], None] | None = on_answer

    def record(self, code: grpc.StatusCode) -> None:
        """Record the call's answer, once."""
        if self._on_answer is not None:
            on_answer, self._on_answer = self._on_answer, None
            on_answer(code)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def abort(self, code: grpc.StatusCode, *args: Any, **kwargs: Any) -> None:
        self.record(code)
        await self._context.abort(code, *args, **kwargs)

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.record(status.code)
        await self._context.abort_with_status(status)


def _log(info: CallInfo, code: grpc.StatusCode, elapsed: float) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields = {
        "kind": "grpc",
        "request_id": info.request_id,
        "service": info.service,
        "method": info.method,
        "code": code.name,
        "latency_ms": round(elapsed * 1000, 3),
        "project": info.project or None,
        "source": info.source,
        "events": info.events,
        "bytes_in": info.bytes_in,
    }
    access_log.info("%s/%s %s", info.service, info.method, code.name,
                    extra={"fields": fields})
