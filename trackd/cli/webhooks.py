"""``trackd webhooks create|list|enable|disable|delete|rotate-secret|replay|attempts``.

Each works on the database directly, with or without a running ``trackd serve`` (the
serving deliverers see a change at their next lease renewal), through the same rules as
``trackd.v1.WebhookService`` (:mod:`trackd.server.webhooks`). Where the output matters to a
script, the last line is the value alone: a new endpoint's id then its secret, a rotated
secret, the number of messages a replay queued.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from trackd.cli.usage import UsageError
from trackd.server.errors import InvalidArgument, NotFound
from trackd.server.webhooks import EndpointView, Webhooks
from trackd.storage import Store


def add_parser(commands: argparse._SubParsersAction,  # type: ignore[type-arg]
               common: argparse.ArgumentParser) -> None:
    hooks = commands.add_parser("webhooks", help="manage webhook endpoints").add_subparsers(
        dest="webhooks_command", required=True)
    create = hooks.add_parser("create", parents=[common], help="create an endpoint; prints "
                              "its id, then its signing secret (shown only this once)")
    create.add_argument("--project", required=True, help="the project whose events it gets")
    create.add_argument("--url", required=True, help="http(s) URL events are POSTed to")
    create.add_argument("--event", action="append", dest="events", default=[],
                        metavar="NAME", help="repeatable; only these events (default: all)")
    create.add_argument("--batch-size", type=int, default=1,
                        help="events per message, 1-500 (default 1: event.tracked bodies)")
    listing = hooks.add_parser("list", parents=[common], help="list endpoints (never secrets)")
    listing.add_argument("--project")
    for name, text in (("enable", "enable an endpoint (delivery resumes where it stopped)"),
                       ("disable", "disable an endpoint by hand"),
                       ("delete", "delete an endpoint, its queue, dead letters and attempts"),
                       ("rotate-secret", "a new signing secret (printed last); the old one "
                        "signs beside it for 24 h")):
        hooks.add_parser(name, parents=[common], help=text).add_argument("id")
    replay = hooks.add_parser("replay", parents=[common], help="send messages again; prints "
                              "the number queued last")
    replay.add_argument("id")
    what = replay.add_mutually_exclusive_group(required=True)
    what.add_argument("--since", metavar="TIME", help="events received from TIME (ISO-8601 "
                      "with an offset or Z, e.g. 2026-12-07T10:00:00.000Z)")
    what.add_argument("--failed", action="store_true", help="the dead letters")
    replay.add_argument("--until", metavar="TIME", help="with --since: received before TIME")
    attempts = hooks.add_parser("attempts", parents=[common], help="recent attempts")
    attempts.add_argument("id")
    attempts.add_argument("--limit", type=int, default=50, help="at most this many (1-1000)")


def parse_time(value: str, flag: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: {value!r} is not an ISO-8601 time such as "
                         "2026-12-07T10:00:00.000Z") from None
    if parsed.tzinfo is None:
        raise UsageError(f"{flag}: {value!r} has no offset; end it with Z or +HH:MM")
    return parsed


def _line(view: EndpointView) -> str:
    e = view.endpoint
    return (f"{e.id:<27} {e.url:<40} {view.state:<26} {view.lag_seconds:>7.1f}s "
            f"{view.dead_letters:>6}  {e.last_error or '-'}")


async def run(store: Store, args: argparse.Namespace, allow_private: bool) -> int:
    webhooks = Webhooks(store, allow_private)
    command = args.webhooks_command
    try:
        if command == "create":
            endpoint, secret = await webhooks.create(args.project, args.url, args.events,
                                                     args.batch_size)
            print(f"endpoint for project {endpoint.project_id}: {endpoint.url}\n"
                  f"events: {' '.join(endpoint.event_names) or 'all'}; batch size "
                  f"{endpoint.batch_size}\nid, then signing secret (shown only this once):")
            print(endpoint.id)
            print(secret)
        elif command == "list":
            print(f"{'ID':<27} {'URL':<40} {'STATE':<26} {'LAG':>8} {'DEAD':>6}  LAST ERROR")
            for view in await webhooks.listing(args.project):
                print(_line(view))
        elif command in ("enable", "disable"):
            view = await webhooks.set_enabled(args.id, None, command == "enable")
            print(f"{view.endpoint.id}: {view.state}")
        elif command == "delete":
            await webhooks.delete(args.id, None)
            print(f"deleted {args.id}")
        elif command == "rotate-secret":
            secret, until = await webhooks.rotate(args.id, None)
            print(f"the previous secret signs beside the new one until {until:%Y-%m-%d %H:%M}"
                  " UTC\nnew signing secret (shown only this once):")
            print(secret)
        elif command == "replay":
            if args.failed:
                if args.until:
                    raise UsageError("--until goes with --since, not --failed")
                queued = await webhooks.replay_failed(args.id, None)
            else:
                queued = await webhooks.replay_range(
                    args.id, None, parse_time(args.since, "--since"),
                    parse_time(args.until, "--until") if args.until else None)
            print("messages queued again:")
            print(queued)
        elif command == "attempts":
            print(f"{'TIME':<24} {'WEBHOOK-ID':<38} {'RESULT':<40} LATENCY")
            for a in await webhooks.attempts(args.id, None, args.limit):
                result = str(a["status"]) if a["status"] else a["error"]
                if a["status"] and a["error"]:
                    result = f"{a['status']} ({a['outcome']})"
                print(f"{a['at']:%Y-%m-%dT%H:%M:%S.%f}"[:23] + "Z "
                      f"{a['msg_id'] or '-':<38} {result[:40]:<40} {a['latency'] * 1000:.0f} ms")
    except InvalidArgument as exc:
        first = exc.violations[0]
        raise UsageError(f"{first.field}: {first.description}") from None
    except NotFound as exc:
        raise UsageError(exc.message) from None
    return 0
