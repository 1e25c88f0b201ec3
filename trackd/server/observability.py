"""Per-call metrics and the gRPC access log: a grpc.aio server interceptor.

:class:`ObservabilityInterceptor` goes first in the server's interceptor list, outside
:class:`trackd.server.errors.ErrorInterceptor`, so it sees every call's final status, including
the INVALID_ARGUMENT of a message that cannot be decoded. For each unary call it

- takes the request id from ``x-request-id`` call metadata (the gateway sends its own, so
  both halves log the same id) when it is sane, else makes one
  (:mod:`trackd.wire.metadata`);
- keeps a :class:`CallInfo` in a context variable, which the code handling the call fills
  in: :mod:`trackd.server.auth` the project once the caller is authenticated, the tracking
  service the number of events;
- counts the call (``trackd_grpc_requests_total``, ``trackd_grpc_request_duration_seconds``)
  and a failed write call's events (``trackd_events_total``, outcome rejected or failed);
- logs one line on the ``trackd.access`` logger: no key, no message body.

Streaming calls (health Watch, reflection) pass through unobserved.

A call carried inside ``TrackingService.TrackEvents`` (trackd/server/services/carried.py) is
observed as the call it stands for: :func:`observe_carried` gives it its own
:class:`CallInfo` (its own request id and source, from its carried metadata), counts it in
``trackd_grpc_requests_total`` as ``TrackEvent`` with its own code and counts its events
by its own source, so dashboards of TrackEvent calls and of events per source read the
same whether or not the gateway coalesces. It is logged inside the access line of the
TrackEvents call carrying it, which lists every carried call (``calls``: request id,
code, project, source, events, latency): one line per RPC, as for every other call, and
not one per carried call, which at hundreds of calls per RPC was a tenth of the hot
path's CPU (bench/README.md). Past :data:`MAX_CALLS_PER_LINE` calls the line says how
many it carried (``calls_total``) and the rest follow in ``grpc_calls`` lines of the
same request id, so no line grows past what log pipelines keep whole. A carried call that
ends after its carrier's line was written (a cancelled TrackEvents call ends at once,
while its carried calls still clean up, e.g. give back an idempotency key) logs a line of
its own. The TrackEvents call is counted once more as ``TrackEvents``.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from trackd.server import metrics
from trackd.server.interceptors import Handler, UnaryInterceptor, unary_handler
from trackd.wire.metadata import (
    DIALECT_METADATA,
    REQUEST_ID_METADATA,
    new_request_id,
    sane_request_id,
)

access_log = logging.getLogger("trackd.access")

# Carried calls one access line lists; the rest follow in lines of their own. 64 entries
# are about 9 KB: under the 16 KB at which Docker's json-file driver, and some log
# shippers, cut a line in two.
MAX_CALLS_PER_LINE = 64


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
    # The calls this one carried (TrackEvents), as its access line lists them.
    carried: list[dict[str, object]] | None = None
    # Its access line is written: a carried call ending later logs a line of its own.
    logged: bool = False


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

    Run it inside its own task (asyncio.gather does): the CallInfo is a context variable,
    and the carrying call's, which the task's context starts with, is the one whose
    access line lists it.
    """
    started = time.perf_counter()
    carrier = _CALL.get()
    request_id, source = _source_of(metadata)
    info = CallInfo(service=service, method=method,
                    request_id=request_id or new_request_id(), source=source,
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
        _count(info, outcome.code, elapsed)
        if carrier is None or carrier.logged:  # no carrier's line to be in (any more)
            _log(info, outcome.code, elapsed)
        else:
            carrier.events += info.events
            if access_log.isEnabledFor(logging.INFO):
                if carrier.carried is None:
                    carrier.carried = []
                carrier.carried.append({
                    "request_id": info.request_id, "code": outcome.code.name,
                    "project": info.project or None, "source": info.source,
                    "events": info.events, "latency_ms": round(elapsed * 1000, 3)})


def _source_of(metadata: Sequence[tuple[str, Any]]) -> tuple[str | None, str]:
    request_id: str | None = None
    source = metrics.GRPC_SOURCE
    for key, value in metadata:
        if key == REQUEST_ID_METADATA and isinstance(value, str):
            request_id = sane_request_id(value)
        elif key == DIALECT_METADATA and value in metrics.SOURCES:
            source = value
    return request_id, source


def _count(info: CallInfo, code: grpc.StatusCode, elapsed: float) -> None:
    metrics.count_call(info.service, info.method, code, elapsed)
    if info.writes_events and info.events and code != grpc.StatusCode.OK:
        metrics.count_unstored_events(info.source, code, info.events)


class ObservabilityInterceptor(UnaryInterceptor):
    """Request ids, call metrics and one access log line per unary call."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner: Handler = handler.unary_unary
        service, _, name = method.lstrip("/").rpartition("/")

        def finish(info: CallInfo, code: grpc.StatusCode, started: float) -> None:
            elapsed = time.perf_counter() - started
            _count(info, code, elapsed)
            _log(info, code, elapsed)

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            request_id, source = _source_of(context.invocation_metadata() or ())
            info = CallInfo(
                service=service, method=name, request_id=request_id or new_request_id(),
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

        return unary_handler(observed, handler)


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
    info.logged = True
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
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
    carried = info.carried
    if carried is not None:
        fields["calls"] = carried[:MAX_CALLS_PER_LINE]
        if len(carried) > MAX_CALLS_PER_LINE:
            fields["calls_total"] = len(carried)
    access_log.info("%s/%s %s", info.service, info.method, code.name,
                    extra={"fields": fields})
    if carried is None:
        return
    for start in range(MAX_CALLS_PER_LINE, len(carried), MAX_CALLS_PER_LINE):
        calls = carried[start:start + MAX_CALLS_PER_LINE]
        access_log.info(
            "%s/%s calls %d-%d of %d", info.service, info.method, start + 1,
            start + len(calls), len(carried), extra={"fields": {
                "kind": "grpc_calls", "request_id": info.request_id,
                "service": info.service, "method": info.method, "calls": calls}})
