"""``trackd serve --workers N``: the supervisor of N worker processes on the same two ports.

The supervisor (:func:`serve_workers`, run by ``trackd serve`` itself) owns what is shared:

- the data directory's serve lock (``serve.json`` records the supervisor's pid and the
  ports) and the embedded database, started and supervised as a single ``trackd serve``
  does; workers get its URI;
- the two ports, held with ``SO_REUSEPORT`` for the service's lifetime (:mod:`trackd.cli.ports`);
- the development key, made once before any worker starts.

Each worker (``python -m trackd.cli.workers``: a new interpreter, never a fork of a process with
grpc's threads) is a whole gateway and gRPC server, as :func:`trackd.cli.serve.serve` runs them.
Its gRPC server also listens on a private Unix socket, which its own gateway calls: a REST
request is handled start to end by the worker that accepted it. Workers read their settings
from the environment the supervisor gives them (every setting, resolved), run in sessions
of their own (a terminal's Ctrl-C reaches the supervisor only, which drains them) and get
SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``, and their own watch of their
parent), then end within the same bound as a drain the supervisor waits for, finished or
not (:mod:`trackd.cli.workers`), so none outlives it for long.

A worker that dies is started again: after 0.5 s, each further time twice as late up to
10 s, afresh once it ran 30 s; each death is one log line with its cause. On SIGTERM or
SIGINT the supervisor forwards SIGTERM to every worker and waits for them to drain (each
drains its HTTP requests, then its gRPC calls, within the shutdown grace each), and only
then stops the database.

Metrics: the workers run prometheus-client's multiprocess mode, in a fresh directory the
supervisor makes and names in ``PROMETHEUS_MULTIPROC_DIR``, so ``GET /metrics`` answered
by any worker reports the whole service; when a worker dies the supervisor marks it dead
(its live gauges drop out; its counters keep counting in the sums). The supervisor counts
the embedded database's restarts into the same directory.

The worker's environment is :mod:`trackd.cli.worker_environment`; the worker's side is
:mod:`trackd.cli.worker_role` and :mod:`trackd.cli.workers`.

May import: the other ``cli`` modules, :mod:`trackd.server.metrics` and
:mod:`trackd.storage.embedded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trackd.cli.database import open_store
from trackd.cli.instance import ServeLock
from trackd.cli.ports import hold_ports
from trackd.cli.serve import ensure_development_key
from trackd.cli.settings import Settings
from trackd.cli.usage import StartupError
from trackd.cli.worker_environment import worker_environment
from trackd.cli.worker_role import READY_MARKER, drain_bound
from trackd.server import metrics
from trackd.storage.child_process import describe_exit
from trackd.storage.embedded import EmbeddedDatabase

log = logging.getLogger("trackd")

# Restarts of a dead worker: the first after 0.5 s, each further one twice as late, at most
# 10 s apart; a worker that ran this long without dying starts afresh at 0.5 s.
RESTART_FIRST_DELAY = 0.5
RESTART_MAX_DELAY = 10.0
RESTART_STABLE_AFTER = 30.0


def restart_counter(metrics_dir: Path) -> Callable[[], None]:
    """``trackd_embedded_database_restarts`` as the supervisor counts it: into the workers'
    multiprocess directory, so their ``/metrics`` adds it in.

    This process imported prometheus-client (and made its metrics) before the directory
    existed, so the counter is made anew with the client's file-backed value class.
    """
    from prometheus_client import CollectorRegistry, Counter, values

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    in_memory = values.ValueClass
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    try:
        counter = Counter(metrics.EMBEDDED_RESTARTS._name,
                          metrics.EMBEDDED_RESTARTS._documentation,
                          registry=CollectorRegistry())
    finally:
        values.ValueClass = in_memory
    return counter.inc


@dataclass
class Slot:
    """One worker's place: the process now in it, and how often it was restarted."""

    index: int
    process: asyncio.subprocess.Process | None = None
    serving: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0


class Supervisor:
    def __init__(self, settings: Settings, uri: str, runtime: Path, grpc_port: int,
                 http_port: int) -> None:
        self.settings = settings
        self.runtime = runtime
        self.metrics_dir = runtime / "metrics"
        self.metrics_dir.mkdir()
        self.env = worker_environment(settings, uri, grpc_port, http_port, self.metrics_dir)
        self.slots = [Slot(index) for index in range(1, settings.workers + 1)]
        self.stopping = asyncio.Event()
        self.failed: str | None = None  # why start-up failed, when it did

    def socket_path(self, slot: Slot) -> Path:
        return self.runtime / f"worker-{slot.index}.sock"

    async def spawn(self, slot: Slot) -> asyncio.subprocess.Process:
        path = self.socket_path(slot)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a dead worker's
        slot.serving.clear()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "trackd.cli.workers", "--index", str(slot.index),
            "--socket", str(path), "--parent", str(os.getpid()),
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            start_new_session=True)
        slot.process = process
        return process

    async def relay(self, slot: Slot, process: asyncio.subprocess.Process) -> None:
        """The worker's stdout: its ready line, and anything else passed on as ours."""
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line == READY_MARKER:
                slot.serving.set()
            else:
                print(line, flush=True)

    async def keep(self, slot: Slot) -> None:
        """Run the slot's worker until the supervisor stops, starting it again if it dies."""
        delay = RESTART_FIRST_DELAY
        ever_served = False
        while True:
            process = await self.spawn(slot)
            started = time.monotonic()
            relay = asyncio.get_running_loop().create_task(self.relay(slot, process))
            returncode = await process.wait()
            await relay
            ever_served = ever_served or slot.serving.is_set()
            self.mark_dead(process.pid)
            if self.stopping.is_set():
                return
            if not ever_served:
                # Never served once: the same cause would kill every restart.
                self.failed = (f"worker {slot.index} (pid {process.pid}) exited before "
                               f"serving ({describe_exit(returncode)}); its log is above")
                self.stopping.set()
                return
            if time.monotonic() - started >= RESTART_STABLE_AFTER:
                delay = RESTART_FIRST_DELAY
            slot.restarts += 1
            log.warning("worker %d (pid %d) died: %s; restarting it in %.1f s (restart %d)",
                        slot.index, process.pid, describe_exit(returncode), delay,
                        slot.restarts)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.stopping.wait()
            if self.stopping.is_set():
                return
            delay = min(delay * 2, RESTART_MAX_DELAY)

    def mark_dead(self, pid: int) -> None:
        from prometheus_client import multiprocess  # the workers' files, not our metrics
        multiprocess.mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]

    def signal_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)

    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self.slots if slot.process is not None]

    def exit_codes(self) -> list[int | None]:
        return [slot.process.returncode if slot.process is not None else None
                for slot in self.slots]


async def serve_workers(settings: Settings, uri: str, embedded: EmbeddedDatabase | None = None,
                        lock: ServeLock | None = None) -> int:
    """Supervise ``settings.workers`` workers until SIGTERM/SIGINT, then drain them."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    held = hold_ports(settings)
    grpc_port, http_port = (sock.getsockname()[1] for sock in held)
    runtime = Path(tempfile.mkdtemp(prefix="trackd-workers-"))
    database_task: asyncio.Task[None] | None = None
    keepers: list[asyncio.Task[None]] = []
    supervisor = Supervisor(settings, uri, runtime, grpc_port, http_port)
    try:
        store = await open_store(settings, uri)
        try:
            # Once, before any worker: both ports are ours, so a start that fails now
            # fails for a reason no key would have helped.
            await ensure_development_key(store)
        finally:
            await store.close()
        if embedded is not None and embedded.owner:
            # Each worker's own health monitor finds the database down; this restarts it.
            database_task = loop.create_task(embedded.supervise(
                on_death=restart_counter(supervisor.metrics_dir)))
        keepers = [loop.create_task(supervisor.keep(slot)) for slot in supervisor.slots]
        all_serving = loop.create_task(_all_serving(supervisor.slots))
        stopped = loop.create_task(supervisor.stopping.wait())
        requested = loop.create_task(stop_requested.wait())
        await asyncio.wait({all_serving, stopped, requested},
                           return_when=asyncio.FIRST_COMPLETED)
        for task in (all_serving, stopped, requested):
            task.cancel()
        if supervisor.failed is not None:
            raise StartupError(supervisor.failed)
        if not stop_requested.is_set():
            if lock is not None:
                lock.record(settings.host, grpc_port, http_port)
            log.info("trackd is serving: gRPC on %s:%d, REST gateway on http://%s:%d, "
                     "%d workers (pids %s)", settings.host, grpc_port, settings.host,
                     http_port, settings.workers,
                     " ".join(str(pid) for pid in supervisor.pids()))
            await stop_requested.wait()
        log.info("stopping: no new requests; the workers finish the ones in flight")
        return await drain(supervisor, keepers)
    finally:
        supervisor.stopping.set()
        if any(not task.done() for task in keepers):  # start-up failed: stop the others
            await drain(supervisor, keepers)
        if database_task is not None:
            database_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await database_task
        for sock in held:
            sock.close()
        shutil.rmtree(runtime, ignore_errors=True)


async def _all_serving(slots: Sequence[Slot]) -> None:
    for slot in slots:
        await slot.serving.wait()


async def drain(supervisor: Supervisor, keepers: Sequence[asyncio.Task[None]]) -> int:
    """SIGTERM every worker, wait for them (bounded), SIGKILL any left; 0 if all exited 0."""
    supervisor.stopping.set()
    supervisor.signal_all(signal.SIGTERM)
    bound = drain_bound(supervisor.settings.shutdown_grace_seconds)
    _, late = await asyncio.wait(keepers, timeout=bound)
    if late:
        log.warning("%d worker(s) did not stop within %.0f s: killing them", len(late), bound)
        supervisor.signal_all(signal.SIGKILL)
        await asyncio.wait(late)
    codes = supervisor.exit_codes()
    if all(code == 0 for code in codes):
        log.info("stopped cleanly")
        return 0
    log.warning("workers ended with: %s", ", ".join(
        "not started" if code is None else describe_exit(code) for code in codes))
    return 1
