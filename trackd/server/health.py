"""gRPC health that tells the truth, and failing fast while the database is down.

:class:`HealthMonitor` pings the database every ``interval`` seconds (each ping bounded by
``timeout``) and looks at the write pipeline's queue, and keeps the standard gRPC health
service (``grpc.health.v1.Health``) in step. The database is declared down only on
evidence: a ping that fails (the driver found the connection refused or lost, or no
server to select), the embedded database's death (:meth:`HealthMonitor.mark_down`), or
``slow_pings`` consecutive checks whose ping did not answer within ``timeout``. One ping
past the bound is a busy database (a long aggregation ahead of it), not a dead one:
calls are still attempted, and the write pipeline's own bounds protect the service.

- ``""`` (the server overall): SERVING only while the database answers and the write
  queue is below its bound;
- each trackd service: NOT_SERVING while the database does not answer;
  ``trackd.v1.TrackingService`` also while the write queue is full;
- two check names of trackd's own, for readiness probes that must say *which* check
  fails (the gateway's ``/readyz``): :data:`DATABASE_CHECK` and :data:`WRITE_QUEUE_CHECK`.

:class:`AvailabilityGate` is a server interceptor: while the monitor knows the database
is down, every trackd call fails at once with UNAVAILABLE + RetryInfo instead of waiting
out the driver's server selection; and any call that ends UNAVAILABLE makes the monitor
ping at once, so an outage is noticed on the first failed request, not a second later.
A ``TrackEvents`` call is gated per carried call, as the TrackEvent calls it stands for:
each gets its own UNAVAILABLE + RetryInfo result (counted as its own TrackEvent and
listed in the TrackEvents call's access line, trackd/server/services/carried.py) and the
carrying call itself answers OK; a carried call that ends UNAVAILABLE wakes the monitor
as a call of its own would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

from trackd.server import metrics
from trackd.server.errors import Unavailable
from trackd.server.interceptors import UnaryInterceptor, unary_handler
from trackd.server.pipeline import WritePipeline
from trackd.server.services.carried import track_events
from trackd.server.tasks import cancel_and_wait
from trackd.v1 import tracking_pb2

log = logging.getLogger(__name__)

DATABASE_CHECK = "trackd.health.database"
WRITE_QUEUE_CHECK = "trackd.health.write_queue"

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# The services whose calls the gate fails fast (health and reflection always answer).
GATED_PREFIX = "/trackd.v1."
CARRIER_METHOD = "/trackd.v1.TrackingService/TrackEvents"
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]


async def _refuse(request: tracking_pb2.TrackEventRequest, context: Any) -> Any:
    raise Unavailable("the database is unavailable; retry later")


class HealthMonitor:
    """Pings the database and sets every health status; see the module docstring."""

    def __init__(self, servicer: health.aio.HealthServicer, ping: Callable[[], Awaitable[Any]],
                 pipeline: WritePipeline, service_names: Sequence[str], *,
                 tracking_service: str, interval: float = 1.0, timeout: float = 1.0,
                 slow_pings: int = 10) -> None:
        self._servicer = servicer
        self._ping = ping
        self._pipeline = pipeline
        self._service_names = tuple(service_names)
        self._tracking_service = tracking_service
        self.interval = interval
        self.timeout = timeout
        self.slow_pings = slow_pings
        # Consecutive checks whose ping was still unanswered at ``timeout``.
        self.slow = 0
        self.database_up = True  # create_server connected moments ago
        self._statuses: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The ping under way. A check that times out leaves it running, and the next
        # check waits on the same one: cancelling it would also cancel the connection it
        # is opening, and under load (a process busy refusing a storm of requests) every
        # fresh attempt could then take longer than the timeout, so the database would
        # never be seen again although it answers.
        self._ping_task: asyncio.Future[Any] | None = None
        # mark_down() calls so far, and how many there had been when the ping under way
        # started: a ping sent before the database died answers for the dead process,
        # not the one that replaces it, so it never brings the service back up.
        self._deaths = 0
        self._ping_deaths = 0

    @property
    def queue_full(self) -> bool:
        pipeline = self._pipeline
        return pipeline.queued_events >= pipeline.config.max_queued_events

    async def start(self) -> None:
        await self._publish()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        await cancel_and_wait(self._ping_task)
        self._task = self._ping_task = None

    def mark_down(self) -> None:
        """The database is known to be gone (its process died): fail fast from now on,
        until a ping answers."""
        if self.database_up:
            log.warning("database down; answering UNAVAILABLE until it answers again")
        self.database_up = False
        self._deaths += 1
        metrics.set_database_up(False)
        self._wake.set()

    def wake(self) -> None:
        """Check now (a call just failed UNAVAILABLE), not at the next interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a
            # cancellation that arrives as the wake is set, and close() would then wait
            # on this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.check()

    async def check(self) -> None:
        """One ping; then every status as it now stands."""
        await self._publish()  # a mark_down is told at once, not after the ping's timeout
        ping = self._ping_task
        if ping is None or ping.done() or self._ping_deaths != self._deaths:
            if ping is not None and not ping.done():  # outdated by a death: left to end
                ping.add_done_callback(_consume_outcome)
            ping = self._ping_task = asyncio.ensure_future(self._ping())
            self._ping_deaths = self._deaths
        up = self.database_up
        # shield: on timeout the ping goes on, for the next check to wait on.
        with contextlib.suppress(Exception):  # its outcome is read from the task below
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(ping)
        if self._ping_deaths != self._deaths:  # the database died while it was out
            up = False
        elif not ping.done():  # unanswered yet: slow, and down only when it stays so
            self.slow += 1
            if self.slow == 1 and self.database_up:
                log.info("database slow: a ping took over %g s; still serving (down after "
                         "%d in a row)", self.timeout, self.slow_pings)
            if self.slow >= self.slow_pings:
                up = self._down(f"no answer to {self.slow} pings of {self.timeout:g} s")
        elif ping.cancelled() or ping.exception() is not None:  # it failed: evidence
            failure = "cancelled" if ping.cancelled() else type(ping.exception()).__name__
            up = self._down(failure)
        else:
            self.slow = 0
            if not self.database_up:
                log.warning("database reachable again; serving")
            up = True
        self.database_up = up
        metrics.set_database_up(up)
        await self._publish()

    def _down(self, why: str) -> bool:
        if self.database_up:
            log.warning("database unreachable (%s); answering UNAVAILABLE until it answers "
                        "again", why)
        return False

    async def _publish(self) -> None:
        up, queue_ok = self.database_up, not self.queue_full
        wanted = {
            "": SERVING if up and queue_ok else NOT_SERVING,
            DATABASE_CHECK: SERVING if up else NOT_SERVING,
            WRITE_QUEUE_CHECK: SERVING if queue_ok else NOT_SERVING,
        }
        for name in self._service_names:
            ok = up and (queue_ok or name != self._tracking_service)
            wanted[name] = SERVING if ok else NOT_SERVING
        for name, status in wanted.items():
            if self._statuses.get(name) != status:
                self._statuses[name] = status
                await self._servicer.set(name, status)


def _consume_outcome(ping: asyncio.Future[Any]) -> None:
    # Read so that asyncio does not log a ping nobody waits for any more as an
    # exception never retrieved.
    if not ping.cancelled():
        ping.exception()


class AvailabilityGate(UnaryInterceptor):
    """Fails trackd calls fast while the database is down; see the module docstring."""

    def __init__(self, monitor: HealthMonitor) -> None:
        super().__init__()
        self._monitor = monitor

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if not method.startswith(GATED_PREFIX):
            return handler
        inner = handler.unary_unary
        monitor = self._monitor
        carrier = method == CARRIER_METHOD

        async def gated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if not monitor.database_up:
                if carrier:
                    return await track_events(_refuse, request, context)
                raise Unavailable("the database is unavailable; retry later")
            try:
                response = await inner(request, context)
            except Unavailable:
                monitor.wake()
                raise
            if carrier and any(result.error.code == _UNAVAILABLE
                               for result in response.results):
                monitor.wake()
            return response

        return unary_handler(gated, handler)
