"""``trackd serve``: the composition root, wiring storage, the gRPC server and the gateway.

:func:`serve` opens the store, starts the gRPC server (:func:`trackd.server.app.create_server`)
and the REST gateway in front of it (:func:`trackd.gateway.app.create_app`), and the webhook
deliverer beside them (:class:`trackd.outbound.deliverer.Deliverer`), restarts the
embedded database when it dies, mints the development key on a first start, and drains
both servers on SIGTERM or SIGINT. With ``--workers N`` each worker process runs it
(:mod:`trackd.cli.supervisor` and :mod:`trackd.cli.workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from aiohttp import web

from trackd.cli.database import open_store
from trackd.cli.instance import ServeLock
from trackd.cli.settings import Settings
from trackd.cli.usage import FLAGS, StartupError, env_name
from trackd.gateway.app import create_app
from trackd.gateway.http_protocol import GatewayRunner
from trackd.outbound.deliverer import Deliverer
from trackd.server import metrics
from trackd.server.app import PortInUse, create_server
from trackd.server.auth import issue_development_key
from trackd.storage import Store
from trackd.storage.embedded import EmbeddedDatabase

if TYPE_CHECKING:
    from trackd.cli.worker_role import WorkerRole

log = logging.getLogger("trackd")

DEV_PROJECT = "default"


def cannot_listen(what: str, setting: str, host: str, port: int, reason: str) -> StartupError:
    return StartupError(
        f"cannot listen for {what} on {host}:{port}: {reason}; choose another port with "
        f"{FLAGS[setting]} or {env_name(setting)}, or another address with --host or "
        "TRACKD_HOST")


def bind_problem(host: str, port: int) -> str:
    """Why ``host:port`` cannot be bound, as the OS puts it; "" when it can be."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{host} is not an address of this machine ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return str(exc.strerror or exc).lower()
    return ""


def run(main: Awaitable[int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(main)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)  # type: ignore[arg-type]


async def ensure_development_key(store: Store) -> None:
    """A first key for the development project, printed once; none if it has one."""
    issued = await issue_development_key(store.keys, DEV_PROJECT)  # at most one, atomically
    if issued is not None:
        print(f"Created a development API key for project '{DEV_PROJECT}' "
              f"(shown only this once):\n  {issued.secret}", flush=True)
    else:
        log.info("project '%s' already has an API key (its secret was shown when it was "
                 "made); make another with: trackd keys create --project %s",
                 DEV_PROJECT, DEV_PROJECT)


async def serve(settings: Settings, uri: str, embedded: EmbeddedDatabase | None = None,
                lock: ServeLock | None = None, worker: WorkerRole | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then drain. ``worker``: one of ``--workers N``'s
    processes (trackd/cli/workers.py): the ports are shared and the supervisor has done the rest.
    """
    store = await open_store(settings, uri)
    supervisor: asyncio.Task[None] | None = None
    try:
        # Asked first, so that the usual case (a port taken) gets the OS's reason and
        # grpc does not log a bind error of its own. A worker's ports are held (shared)
        # by its supervisor, which asked.
        for what, setting, port in (("gRPC", "grpc_port", settings.grpc_port),
                                    ("the REST gateway", "http_port", settings.http_port)):
            if worker is None and port and (problem := bind_problem(settings.host, port)):
                raise cannot_listen(what, setting, settings.host, port, problem)
        config = settings.server_config()
        if worker is not None:
            config = dataclasses.replace(config, reuse_port=True,
                                         local_address=worker.grpc_target)
        try:
            server = await create_server(store, config)
        except PortInUse as exc:
            raise cannot_listen("gRPC", "grpc_port", exc.host, exc.port,
                                bind_problem(exc.host, exc.port)
                                or "the port is in use or not available") from exc
        if embedded is not None and embedded.owner:
            # Restarted when it dies, for as long as trackd serves; requests fail fast
            # from the moment it is found dead.
            monitor = server.monitor

            def database_died() -> None:
                metrics.count_embedded_restart()
                monitor.mark_down()

            supervisor = asyncio.get_running_loop().create_task(
                embedded.supervise(on_death=database_died))
        gateway = settings.gateway_settings(server.port)
        if worker is not None:
            gateway = dataclasses.replace(gateway, grpc_target=worker.grpc_target)
        runner = GatewayRunner(create_app(gateway),
                               access_log=None, shutdown_timeout=settings.shutdown_grace_seconds)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.http_port,
                           reuse_port=worker is not None)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            await server.stop(0)
            raise cannot_listen("the REST gateway", "http_port", settings.host,
                                settings.http_port,
                                bind_problem(settings.host, settings.http_port)
                                or "the port is in use or not available") from exc
        # Webhooks leave from every process; leases in MongoDB give each endpoint one.
        deliverer = Deliverer(store.db, store.webhooks, store.deliveries,
                              settings.delivery_config())
        deliverer.start()
        if worker is not None:
            worker.ready(settings.host, server.port, settings.http_port)
        else:
            # Only once both ports are ours: a start that fails mints no key.
            await ensure_development_key(store)
            if lock is not None:
                lock.record(settings.host, server.port, settings.http_port)
            log.info("trackd is serving: gRPC on %s:%d, REST gateway on http://%s:%d",
                     settings.host, server.port, settings.host, settings.http_port)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("stopping: no new requests; finishing the ones in flight")
        # Outside in: HTTP first (its handlers still need the gRPC server), then gRPC,
        # then the pipeline drains, then the database goes.
        await runner.cleanup()
        await deliverer.close()
        await server.stop(settings.shutdown_grace_seconds)
        log.info("stopped cleanly")
        return 0
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await store.close()
