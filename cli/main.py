"""``trackd serve``, ``trackd keys create|revoke|list`` and ``trackd websites create|list``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from cli.settings import Settings, load
from gateway.app import create_app
from server.app import create_server
from server.auth import ALL_SCOPES, DEFAULT_SCOPES, issue_development_key, issue_key
from server.websites import canonical_origin
from storage import Store, connect
from storage.embedded import EmbeddedDatabase, EmbeddedUnavailable, is_installed

log = logging.getLogger("trackd")

DEV_PROJECT = "default"


class UsageError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


@contextlib.contextmanager
def database_uri(settings: Settings) -> Iterator[str]:
    """MONGODB_URI when set; else the embedded database in the data dir, for the block."""
    if settings.mongodb_uri:
        yield settings.mongodb_uri
        return
    if not is_installed():
        raise UsageError(
            "no database: set MONGODB_URI (or --mongodb-uri) to a MongoDB server, "
            "or install the embedded one with: pip install 'trackd[embedded]'")
    embedded = EmbeddedDatabase(settings.data_dir.resolve())
    try:
        uri = embedded.start()
    except EmbeddedUnavailable as exc:
        raise UsageError(str(exc)) from exc
    if embedded.owner:
        log.info("embedded database (SecantusDB) serving %s at %s",
                 settings.data_dir.resolve(), uri)
    try:
        yield uri
    finally:
        embedded.stop()


def run(main: Awaitable[int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(main)  # type: ignore[arg-type]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)  # type: ignore[arg-type]


async def serve(settings: Settings, uri: str) -> int:
    store = await connect(uri, settings.database)
    try:
        issued = await issue_development_key(store.keys, DEV_PROJECT)  # at most one, atomically
        if issued is not None:
            print(f"Created a development API key for project '{DEV_PROJECT}' "
                  f"(shown only this once):\n  {issued.secret}", flush=True)
        server = await create_server(store, settings.server_config())
        runner = web.AppRunner(create_app(settings.gateway_settings(server.port)),
                               access_log=None, shutdown_timeout=settings.shutdown_grace_seconds)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.http_port)
        await site.start()
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
        await store.close()


async def with_store(settings: Settings, uri: str,
                     action: Callable[[Store], Awaitable[int]]) -> int:
    store = await connect(uri, settings.database)
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
    commands = root.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mongodb-uri", help="MongoDB server (env MONGODB_URI); "
                        "default: the embedded database")
    common.add_argument("--data-dir", help="embedded database directory "
                        "(env TRACKD_DATA_DIR, default ./.trackd)")
    common.add_argument("--database", help="database name (env TRACKD_DATABASE, default trackd)")

    serve_cmd = commands.add_parser("serve", parents=[common],
                                    help="run the gRPC server and the REST gateway")
    serve_cmd.add_argument("--host", help="listen address (env TRACKD_HOST, default 127.0.0.1)")
    serve_cmd.add_argument("--grpc-port", type=int, help="env TRACKD_GRPC_PORT, default 50051")
    serve_cmd.add_argument("--http-port", type=int, help="env TRACKD_HTTP_PORT, default 8080")
    serve_cmd.add_argument("--log-level", help="env TRACKD_LOG_LEVEL, default INFO")

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
                     "log_level")
    }
    try:
        settings = load(overrides)
        # Admin commands print their result; only warnings belong beside it.
        level = settings.log_level.upper() if args.command == "serve" else "WARNING"
        logging.basicConfig(level=level, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        with database_uri(settings) as uri:
            if args.command == "serve":
                return run(serve(settings, uri))
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
        return 2


if __name__ == "__main__":
    sys.exit(main())
