"""``trackd serve``, ``trackd keys create|revoke|list`` and ``trackd websites create|list``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.metadata
import logging
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from cli.instance import AlreadyServed, ServeLock
from cli.logs import configure as configure_logging
from cli.settings import Settings, load
from gateway.app import create_app
from gateway.http_protocol import GatewayRunner
from server import metrics
from server.app import PortInUse, create_server
from server.auth import ALL_SCOPES, DEFAULT_SCOPES, issue_development_key, issue_key
from server.websites import canonical_origin
from storage import InvalidUri, StorageUnavailable, Store, connect
from storage.embedded import EmbeddedDatabase, EmbeddedUnavailable, is_installed

if TYPE_CHECKING:
    from cli.workers import WorkerRole

log = logging.getLogger("trackd")

DEV_PROJECT = "default"


# The command-line flag of each setting that has one (the rest are environment only).
FLAGS = {
    "mongodb_uri": "--mongodb-uri", "data_dir": "--data-dir", "database": "--database",
    "host": "--host", "grpc_port": "--grpc-port", "http_port": "--http-port",
    "log_level": "--log-level", "workers": "--workers",
}
SECRET_SETTINGS = ("mongodb_uri",)  # may hold a password: never echoed


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""

    exit_status = 2


class StartupError(UsageError):
    """trackd serve could not start (a port, the database); one line, exit status 1."""

    exit_status = 1


def env_name(setting: str) -> str:
    return "MONGODB_URI" if setting == "mongodb_uri" else f"TRACKD_{setting.upper()}"


def setting_names(setting: str) -> str:
    """``TRACKD_GRPC_PORT (--grpc-port)``: how a user sets it."""
    flag = FLAGS.get(setting)
    return f"{env_name(setting)} ({flag})" if flag else env_name(setting)


def invalid_setting(exc: ValidationError) -> str:
    """The first invalid setting, as one line naming its variable and flag."""
    error = exc.errors()[0]
    loc = str(error["loc"][0]).lower() if error["loc"] else ""
    setting = "mongodb_uri" if loc in ("mongodb_uri", "trackd_mongodb_uri") else \
        loc.removeprefix("trackd_")
    got = "" if setting in SECRET_SETTINGS or "input" not in error else \
        f" (got {str(error['input'])[:60]!r})"
    return f"invalid {setting_names(setting)}: {error['msg']}{got}"


def settings_help() -> str:
    """Every setting, for ``trackd serve --help`` (README's settings table says more)."""
    lines = ["settings (a flag, else its environment variable, else the default; README.md's "
             "Settings table has them too):"]
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default is None else field.default
        lines.append(f"  {setting_names(name)}\n      {field.description} "
                     f"(default: {default})")
    return "\n".join(lines)


def version() -> str:
    try:
        return importlib.metadata.version("trackd")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


@contextlib.contextmanager
def database_uri(settings: Settings,
                 serving: bool = False,
                 ) -> Iterator[tuple[str, EmbeddedDatabase | None, ServeLock | None]]:
    """MONGODB_URI when set; else the embedded database in the data dir, for the block.

    ``serving``: this is ``trackd serve``, which takes the data dir's serve lock first
    (a second serve exits at once, naming the first) and must own the database it runs.
    """
    if settings.mongodb_uri:
        yield settings.mongodb_uri, None, None
        return
    if not is_installed():
        raise UsageError(
            "no database: set MONGODB_URI (or --mongodb-uri) to a MongoDB server, "
            "or install the embedded one with: pip install 'trackd[embedded]'")
    data_dir = settings.data_dir.resolve()
    lock = ServeLock(data_dir) if serving else None
    try:
        if lock is not None:
            try:
                lock.acquire()
            except AlreadyServed as exc:
                raise StartupError(str(exc)) from exc
            except OSError as exc:
                raise StartupError(f"cannot use the data directory {data_dir}: "
                                   f"{exc.strerror}; set another with --data-dir "
                                   "(TRACKD_DATA_DIR)") from exc
        embedded = EmbeddedDatabase(data_dir)
        try:
            uri = embedded.start(own=serving)
        except EmbeddedUnavailable as exc:
            raise StartupError(str(exc)) from exc
        except OSError as exc:
            raise StartupError(f"cannot use the data directory {data_dir}: {exc.strerror}; "
                               "set another with --data-dir (TRACKD_DATA_DIR)") from exc
        if embedded.owner:
            log.info("embedded database (SecantusDB, pid %s) serving %s at %s",
                     embedded.pid, data_dir, uri)
        try:
            yield uri, embedded, lock
        finally:
            embedded.stop()
    finally:
        if lock is not None:
            lock.release()


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


async def open_store(settings: Settings, uri: str) -> Store:
    """The store, once the database answers (bounded); one line when it cannot be had."""
    try:
        return await connect(uri, settings.database,
                             reachable_within=settings.mongodb_timeout_seconds)
    except InvalidUri as exc:
        raise UsageError(f"MONGODB_URI (--mongodb-uri) is not a MongoDB connection string "
                         f"PyMongo accepts: {exc}") from exc
    except StorageUnavailable as exc:
        raise StartupError(f"{exc}: check MONGODB_URI (--mongodb-uri), or wait longer with "
                           "TRACKD_MONGODB_TIMEOUT_SECONDS") from exc


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
    processes (cli/workers.py): the ports are shared and the supervisor has done the rest.
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
        await server.stop(settings.shutdown_grace_seconds)
        log.info("stopped cleanly")
        return 0
    finally:
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await store.close()


async def with_store(settings: Settings, uri: str,
                     action: Callable[[Store], Awaitable[int]]) -> int:
    store = await open_store(settings, uri)
    try:
        return await action(store)
    finally:
        await store.close()


async def keys_create(store: Store, project: str, scopes: list[str],
                      websites: list[str] | None = None) -> int:
    websites = websites or []
    found = await store.websites.get_many(websites)
    for website_id in websites:
        if website_id not in found or found[website_id].project_id != project:
            raise UsageError(f"project {project} has no website {website_id}")
    try:
        issued = await issue_key(store.keys, project, scopes, websites)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    record = issued.record
    print(f"key id:  {record.key_id}\nproject: {record.project_id}\n"
          f"scopes:  {' '.join(record.scopes)}\n"
          + (f"websites: {' '.join(record.websites)}\n" if record.websites else "")
          + "secret (shown only this once; trackd keeps just its hash):")
    print(issued.secret)
    return 0


async def keys_revoke(store: Store, key_id: str) -> int:
    if not await store.keys.revoke(key_id):
        raise UsageError(f"no active key with id {key_id}")
    print(f"revoked {key_id}")
    return 0


async def keys_list(store: Store, project: str | None) -> int:
    print(f"{'KEY ID':<22} {'PROJECT':<20} {'SCOPES':<24} {'CREATED':<20} STATUS")
    for record in await store.keys.list(project):
        status = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
        print(f"{record.key_id:<22} {record.project_id:<20} {' '.join(record.scopes):<24} "
              f"{record.created_at:%Y-%m-%d %H:%M:%S}  {status}")
    return 0


async def websites_create(store: Store, project: str, origins: list[str],
                          allow_server_side: bool) -> int:
    if not project:
        raise UsageError("a project name is required")
    try:
        canonical = list(dict.fromkeys(canonical_origin(origin) for origin in origins))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    record = await store.websites.insert(str(uuid.uuid4()), project, canonical,
                                         allow_server_side=allow_server_side)
    print(f"project: {record.project_id}\norigins: {' '.join(record.origins) or '(none)'}\n"
          f"requests without an Origin: "
          f"{'accepted' if record.allow_server_side else 'refused'}\nwebsite id:")
    print(record.website_id)
    return 0


async def websites_list(store: Store, project: str | None) -> int:
    print(f"{'WEBSITE ID':<36}  {'PROJECT':<20} {'SERVER-SIDE':<11}  ORIGINS")
    for record in await store.websites.list(project):
        print(f"{record.website_id:<36}  {record.project_id:<20} "
              f"{'yes' if record.allow_server_side else 'no':<11}  {' '.join(record.origins)}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="trackd", description="Event-tracking ingestion: gRPC API and REST gateway.")
    root.add_argument("--version", action="version", version=f"trackd {version()}")
    commands = root.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mongodb-uri", help="MongoDB server (env MONGODB_URI); "
                        "default: the embedded database")
    common.add_argument("--data-dir", help="embedded database directory "
                        "(env TRACKD_DATA_DIR, default ./.trackd)")
    common.add_argument("--database", help="database name (env TRACKD_DATABASE, default trackd)")

    serve_cmd = commands.add_parser(
        "serve", parents=[common], help="run the gRPC server and the REST gateway",
        epilog=settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    serve_cmd.add_argument("--host", help="listen address (env TRACKD_HOST, default 127.0.0.1)")
    # Ports are checked with the other settings (one line naming the flag when invalid).
    serve_cmd.add_argument("--grpc-port", help="env TRACKD_GRPC_PORT, default 50051")
    serve_cmd.add_argument("--http-port", help="env TRACKD_HTTP_PORT, default 8080")
    serve_cmd.add_argument("--log-level", help="env TRACKD_LOG_LEVEL, default INFO; "
                           "other libraries stay at WARNING unless named: DEBUG,pymongo=DEBUG")
    serve_cmd.add_argument("--log-format", choices=("auto", "json", "text"),
                           help="env TRACKD_LOG_FORMAT, default auto: text on a terminal, "
                           "else one JSON object per line")
    serve_cmd.add_argument("--workers", help="processes serving the same ports, a number or "
                           "auto (one per core); env TRACKD_WORKERS, default 1")

    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True)
    create = keys.add_parser("create", parents=[common], help="create a key; prints its secret")
    create.add_argument("--project", required=True, help="the project (tenant) it writes to")
    create.add_argument("--scope", action="append", dest="scopes", choices=ALL_SCOPES,
                        help=f"repeatable; default: {' '.join(DEFAULT_SCOPES)}")
    create.add_argument("--website", action="append", dest="websites", metavar="WEBSITE_ID",
                        help="repeatable; limit the key to these websites' events "
                        "(default: any website of the project)")
    revoke = keys.add_parser("revoke", parents=[common], help="revoke a key by its id")
    revoke.add_argument("key_id")
    listing = keys.add_parser("list", parents=[common], help="list keys (never secrets)")
    listing.add_argument("--project")

    websites = commands.add_parser(
        "websites", help="manage websites (browser tracking by website id)").add_subparsers(
        dest="websites_command", required=True)
    site = websites.add_parser("create", parents=[common],
                               help="create a website; prints its id (a UUID) last")
    site.add_argument("--project", required=True, help="the project (tenant) it belongs to")
    site.add_argument("--origin", action="append", dest="origins", default=[],
                      metavar="ORIGIN", help="repeatable; an origin its pages are served from, "
                      "such as https://example.com")
    site.add_argument("--no-server-side", dest="allow_server_side", action="store_false",
                      help="refuse website-id requests without an Origin header "
                      "(servers, curl); default: accept them")
    site_listing = websites.add_parser("list", parents=[common], help="list websites")
    site_listing.add_argument("--project")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides: dict[str, Any] = {
        name: getattr(args, name, None)
        for name in ("mongodb_uri", "data_dir", "database", "host", "grpc_port", "http_port",
                     "log_level", "log_format", "workers")
    }
    try:
        try:
            settings = load(overrides)
        except ValidationError as exc:
            raise UsageError(invalid_setting(exc)) from exc
        # Admin commands print their result; only warnings belong beside it.
        level = settings.log_level if args.command == "serve" else "WARNING"
        configure_logging(level, settings.log_format)
        if args.command == "serve":
            with database_uri(settings, serving=True) as (uri, embedded, lock):
                if settings.workers > 1:
                    from cli.workers import serve_workers  # it imports this module
                    return run(serve_workers(settings, uri, embedded, lock))
                return run(serve(settings, uri, embedded, lock))
        with database_uri(settings) as (uri, _, _):
            actions: dict[str, Callable[[Store], Awaitable[int]]] = {
                "create": lambda s: keys_create(s, args.project,
                                                args.scopes or list(DEFAULT_SCOPES),
                                                args.websites),
                "revoke": lambda s: keys_revoke(s, args.key_id),
                "list": lambda s: keys_list(s, args.project),
            }
            if args.command == "websites":
                actions = {
                    "create": lambda s: websites_create(s, args.project, args.origins,
                                                        args.allow_server_side),
                    "list": lambda s: websites_list(s, args.project),
                }
                return run(with_store(settings, uri, actions[args.websites_command]))
            return run(with_store(settings, uri, actions[args.keys_command]))
    except UsageError as exc:
        print(f"trackd: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:  # Ctrl-C before serving began: nothing to drain
        return 130

if __name__ == "__main__":
    sys.exit(main())
