"""The ``trackd`` command line: ``serve``, ``keys create|revoke|list``,
``websites create|list``, ``plans ...`` and ``webhooks ...``, parsed here and handed to
:mod:`trackd.cli.serve` (the server's composition root), :mod:`trackd.cli.admin` (the admin
commands), :mod:`trackd.cli.plans` (tracking plans, which parses its own subcommands) or
:mod:`trackd.cli.webhooks`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from trackd.cli import admin, plans
from trackd.cli import webhooks as webhooks_cli
from trackd.cli.database import database_uri, with_store
from trackd.cli.logs import configure as configure_logging
from trackd.cli.serve import run, serve
from trackd.cli.settings import Settings, load
from trackd.cli.supervisor import serve_workers
from trackd.cli.usage import UsageError, invalid_setting, settings_help
from trackd.server.auth import ALL_SCOPES, DEFAULT_SCOPES
from trackd.storage import Store


def version() -> str:
    try:
        return importlib.metadata.version("trackd")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown"


def _default(setting: str) -> Any:
    """A setting's default, as the help texts state it (trackd/cli/settings.py holds it)."""
    return Settings.model_fields[setting].default


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="trackd", description="Event-tracking ingestion: gRPC API and REST gateway.")
    root.add_argument("--version", action="version", version=f"trackd {version()}")
    commands = root.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--mongodb-uri", help="MongoDB server (env MONGODB_URI); "
                        "default: the embedded database")
    common.add_argument("--data-dir", help="embedded database directory "
                        f"(env TRACKD_DATA_DIR, default ./{_default('data_dir')})")
    common.add_argument("--database", help="database name "
                        f"(env TRACKD_DATABASE, default {_default('database')})")

    serve_cmd = commands.add_parser(
        "serve", parents=[common], help="run the gRPC server and the REST gateway",
        epilog=settings_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    serve_cmd.add_argument("--host", help="listen address "
                           f"(env TRACKD_HOST, default {_default('host')})")
    # Ports are checked with the other settings (one line naming the flag when invalid).
    serve_cmd.add_argument("--grpc-port",
                           help=f"env TRACKD_GRPC_PORT, default {_default('grpc_port')}")
    serve_cmd.add_argument("--http-port",
                           help=f"env TRACKD_HTTP_PORT, default {_default('http_port')}")
    serve_cmd.add_argument("--log-level", help="env TRACKD_LOG_LEVEL, default "
                           f"{_default('log_level')}; other libraries stay at WARNING "
                           "unless named: DEBUG,pymongo=DEBUG")
    serve_cmd.add_argument("--log-format", choices=("auto", "json", "text"),
                           help=f"env TRACKD_LOG_FORMAT, default {_default('log_format')}: "
                           "text on a terminal, else one JSON object per line")
    serve_cmd.add_argument("--workers", help="processes serving the same ports, a number or "
                           "auto (one per core); env TRACKD_WORKERS, default "
                           f"{_default('workers')}")

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
    plans.add_commands(commands, common)
    webhooks_cli.add_parser(commands, common)
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
                    return run(serve_workers(settings, uri, embedded, lock))
                return run(serve(settings, uri, embedded, lock))
        if args.command == "plans":
            action = plans.action(args)  # a bad plan file fails before the database opens
            with database_uri(settings) as (uri, _, _):
                return run(with_store(settings, uri, action))
        with database_uri(settings) as (uri, _, _):
            actions: dict[str, Callable[[Store], Awaitable[int]]] = {
                "create": lambda s: admin.keys_create(s, args.project,
                                                      args.scopes or list(DEFAULT_SCOPES),
                                                      args.websites),
                "revoke": lambda s: admin.keys_revoke(s, args.key_id),
                "list": lambda s: admin.keys_list(s, args.project),
            }
            if args.command == "webhooks":
                return run(with_store(settings, uri, lambda s: webhooks_cli.run(
                    s, args, settings.webhook_allow_private)))
            if args.command == "websites":
                actions = {
                    "create": lambda s: admin.websites_create(
                        s, args.project, args.origins, args.allow_server_side),
                    "list": lambda s: admin.websites_list(s, args.project),
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
