"""``trackd plans set|show|violations`` and ``trackd plans quarantine list|release|drop``:
a project's tracking plan, managed against the database directly (as ``trackd keys``
is), through the same rules as the TrackingPlanService (:mod:`trackd.server.plans.manage`).

A plan file is YAML or JSON (JSON is YAML), checked whole before anything is stored: a
problem is one line naming the file and the path inside it. ``set`` prints the new
version number as its last line, for scripts.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from trackd.cli.usage import UsageError
from trackd.server.plans import manage
from trackd.server.plans.rules import PlanError, check_plan
from trackd.storage import Store
from trackd.storage.indexes import PLAN_VIOLATIONS_TTL_SECONDS

_PERIOD = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
Action = Callable[[Store], Awaitable[int]]


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``plans`` command and its subcommands, under ``trackd``."""
    plans = commands.add_parser(
        "plans", help="manage a project's tracking plan and its quarantine").add_subparsers(
        dest="plans_command", required=True)
    project = argparse.ArgumentParser(add_help=False, parents=[common])
    project.add_argument("--project", required=True, help="the project (tenant)")
    setting = plans.add_parser("set", parents=[project],
                               help="check a plan file (YAML or JSON) and store it as the "
                               "next version; prints the version number last")
    setting.add_argument("file", help="the plan file")
    show = plans.add_parser("show", parents=[project], help="print the plan (YAML)")
    show.add_argument("--version", dest="plan_version", type=int, default=0,
                      help="this version (default: the current one)")
    report = plans.add_parser("violations", parents=[project],
                              help="violations per event name and kind: count, last seen, "
                              "one example with its request id")
    report.add_argument("--since", default="24h", help="how far back: 90s, 30m, 1h, 7d "
                        "(default 24h, at most 30d)")
    quarantine = plans.add_parser(
        "quarantine", help="events the plan refused (kept 30 days)").add_subparsers(
        dest="quarantine_command", required=True)
    for name, text in (("list", "list quarantined events, oldest first"),
                       ("release", "judge them again against the current version and store "
                        "those that pass"),
                       ("drop", "discard them")):
        command = quarantine.add_parser(name, parents=[project], help=text)
        command.add_argument("--event", help="only events of this name")
        if name == "list":
            command.add_argument("--limit", type=int, default=100, help="default 100")


def action(args: argparse.Namespace) -> Action:
    """What ``args`` (a parsed ``trackd plans ...``) asks to do with the store."""
    if args.plans_command == "set":
        document = read_plan(Path(args.file))
        try:  # checked whole before the database is even opened
            check_plan(document)
        except PlanError as exc:
            raise UsageError(f"{args.file}: {exc}") from exc
        return lambda store: set_plan(store, args.project, args.file, document)
    if args.plans_command == "show":
        return lambda store: show(store, args.project, args.plan_version)
    if args.plans_command == "violations":
        since = period(args.since)
        return lambda store: violations(store, args.project, since)
    actions: dict[str, Action] = {
        "list": lambda store: quarantine_list(store, args.project, args.event,
                                              getattr(args, "limit", 100)),
        "release": lambda store: release(store, args.project, args.event),
        "drop": lambda store: drop(store, args.project, args.event),
    }
    return actions[args.quarantine_command]


def read_plan(path: Path) -> Any:
    """The file's document as JSON values (a UsageError naming the file otherwise)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read: {exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: is not YAML or JSON: {' '.join(str(exc).split())}") from exc
    try:  # YAML has more than JSON (dates, keys that are numbers): a plan is JSON
        return orjson.loads(orjson.dumps(document))
    except TypeError as exc:
        raise UsageError(f"{path}: holds a value JSON cannot ({exc}); quote it") from exc


def period(text: str) -> timedelta:
    match = _PERIOD.match(text.strip())
    if match is None:
        raise UsageError(f"--since {text!r}: expected a number and s, m, h or d, such as 1h")
    since = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if not timedelta(0) < since <= timedelta(seconds=PLAN_VIOLATIONS_TTL_SECONDS):
        raise UsageError(f"--since {text!r}: must be more than 0 and at most 30d")
    return since


async def set_plan(store: Store, project: str, file: str, document: Any) -> int:
    try:
        record = await manage.set_plan(store, project, document)
    except PlanError as exc:
        raise UsageError(f"{file}: {exc}") from exc
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    checked = orjson.loads(record.plan_json)
    print(f"project: {project}\nenforcement: {checked['enforcement']}\n"
          f"unplanned_events: {checked['unplanned_events']}\nevents: {len(checked['events'])}\n"
          "version:")
    print(record.version)
    return 0


async def show(store: Store, project: str, version: int) -> int:
    record = await manage.get_plan(store, project, version)
    if record is None:
        which = f"version {version}" if version else "plan"
        raise UsageError(f"project {project} has no tracking {which}")
    print(f"# project {project}, version {record.version}, "
          f"set {record.created_at:%Y-%m-%d %H:%M:%S} UTC")
    print(yaml.safe_dump(orjson.loads(record.plan_json), sort_keys=False,
                         allow_unicode=True), end="")
    return 0


async def violations(store: Store, project: str, since: timedelta) -> int:
    rows = await manage.report(store, project, datetime.now(UTC) - since)
    print(f"{'EVENT':<24} {'KIND':<20} {'COUNT':>7}  {'LAST SEEN':<19}  {'REQUEST ID':<32}  "
          "EXAMPLE")
    for row in rows:
        example = row.example
        print(f"{row.name:<24} {row.kind:<20} {row.count:>7}  "
              f"{row.last_seen:%Y-%m-%d %H:%M:%S}  {example.request_id:<32}  "
              f"{example.field} {example.message}")
    return 0


async def quarantine_list(store: Store, project: str, event: str | None, limit: int) -> int:
    if not 1 <= limit <= 1000:
        raise UsageError("--limit must be 1 to 1000")
    items, total = await manage.quarantined(store, project, event, limit)
    print(f"{'EVENT ID':<38} {'EVENT':<24} {'QUARANTINED':<19}  {'VERSION':>7}  "
          f"{'REQUEST ID':<32}  VIOLATION")
    for item in items:
        first = item.violations[0] if item.violations else None
        what = f"{first['field']} {first['message']}" if first else "(refused with its batch)"
        more = f" (+{len(item.violations) - 1} more)" if len(item.violations) > 1 else ""
        print(f"{item.event['event_id']:<38} {item.event['name']:<24} "
              f"{item.quarantined_at:%Y-%m-%d %H:%M:%S}  {item.plan_version:>7}  "
              f"{item.request_id:<32}  {what}{more}")
    print(f"{total} quarantined" + (f", {len(items)} listed" if len(items) < total else ""))
    return 0


async def release(store: Store, project: str, event: str | None) -> int:
    released = await manage.release(store, project, event)
    against = f"plan version {released.plan_version}" if released.plan_version else "no plan"
    print(f"released: {released.stored} stored, {released.duplicate} already stored, "
          f"{released.still_quarantined} still quarantined ({against})")
    return 0


async def drop(store: Store, project: str, event: str | None) -> int:
    print(f"dropped: {await manage.drop(store, project, event)}")
    return 0
