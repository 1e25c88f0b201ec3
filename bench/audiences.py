"""Audience evaluation at scale, and what the chosen indexing costs ingest.

``bench/run audiences`` (or ``python -m bench.audiences``) on the embedded database
(or ``MONGODB_URI``), in one run:

1. loads a project of ``--users`` users (100,000) and ``--events`` events (1,000,000) over
   90 days, in trackd's document shapes and with trackd's indexes: 25 event names with a
   long-tailed popularity, users with long-tailed activity, profiles with plans, roles,
   sign-up dates and traits;
2. evaluates, through a real gRPC server, the Cueflow seed's audience (viewed the
   advanced export AND never used it) and a five-rule, two-group audience, ``--runs``
   (20) times each, and matches single users: p50 / p99 milliseconds; first reading the
   events, then from the audience index (its load time and resident memory too), and
   prints the speedup of one over the other;
3. measures ingest (the server's write pipeline, 500-event batches) into fresh
   databases, each ``--ingest-events`` events: with every index trackd has, without the
   audience index (``project_name_user_timestamp``), with the audience index following
   the change stream (what trackd ships), and with the alternative design, per-(user,
   event) statistics (count, first, last) upserted by every flush; and the seed audience
   evaluated from those statistics. The ratios are the cost of each design.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from pymongo import UpdateOne, WriteConcern

from bench.loadgen import percentile
from trackd.server.app import ServerConfig, create_server
from trackd.server.audiences import AudienceIndex
from trackd.server.auth import ALL_SCOPES, issue_key
from trackd.server.pipeline import PipelineConfig, WritePipeline
from trackd.storage import Store, connect
from trackd.storage.changes import ChangeFeed
from trackd.storage.embedded import EmbeddedDatabase
from trackd.storage.events import EventRepository, InsertOutcome
from trackd.storage.indexes import EVENTS, ensure_indexes
from trackd.v1 import audiences_pb2, audiences_pb2_grpc

PROJECT = "bench"
FOLLOWED = "with every index and the audience index following the feed"
DAYS = 90
# Event names and their weights: a few everyday events, a long tail of rarer ones.
EVENT_WEIGHTS: dict[str, float] = {
    "page_viewed": 30, "session_started": 14, "button_clicked": 10, "login": 8,
    "search_performed": 6, "feature_used": 5, "report_viewed": 4, "dashboard_created": 3,
    "file_uploaded": 2.5, "comment_added": 2, "export_completed": 1.8,
    "advanced_export_viewed": 1.5, "invite_sent": 1.2, "settings_changed": 1,
    "integration_connected": 0.8, "advanced_export_used": 0.5, "plan_upgraded": 0.4,
    "payment_failed": 0.3, "trial_started": 0.3, "onboarding_step": 1.5,
    "subscription_changed": 0.25, "subscription_cancelled": 0.15, "user_invited": 0.6,
    "api_key_created": 0.2, "webhook_configured": 0.1,
}
PLANS = ["free", "trial", "starter", "pro", "enterprise"]
ROLES = ["admin", "member", "viewer", "owner"]
AUDIENCE_INDEX = "project_name_user_timestamp"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rule_event(op: audiences_pb2.EventRuleOperator, name: str,
               **fields: Any) -> audiences_pb2.Rule:
    rule = audiences_pb2.Rule(event=audiences_pb2.EventRule(operator=op, event_name=name))
    if "count" in fields:
        rule.event.count = fields["count"]
    if "within" in fields:
        rule.event.within.FromTimedelta(fields["within"])
    return rule


def rule_property(op: audiences_pb2.PropertyRuleOperator, name: str,
                  value: Any) -> audiences_pb2.Rule:
    rule = audiences_pb2.Rule(property=audiences_pb2.PropertyRule(operator=op, property=name))
    if isinstance(value, str):
        rule.property.value.string_value = value
    else:
        rule.property.value.number_value = value
    return rule


def seed_audience() -> audiences_pb2.Audience:
    """The Cueflow seed's campaign: viewed the advanced export, never used it."""
    return audiences_pb2.Audience(groups=[audiences_pb2.RuleGroup(rules=[
        rule_event(audiences_pb2.EVENT_RULE_OPERATOR_HAS_DONE, "advanced_export_viewed"),
        rule_event(audiences_pb2.EVENT_RULE_OPERATOR_HAS_NOT_DONE, "advanced_export_used"),
    ])])


def five_rule_audience() -> audiences_pb2.Audience:
    """Power users on a paid plan, OR recently active users who invited someone and
    never cancelled."""
    return audiences_pb2.Audience(groups=[
        audiences_pb2.RuleGroup(rules=[
            rule_event(audiences_pb2.EVENT_RULE_OPERATOR_COUNT_GREATER_THAN, "report_viewed",
                       count=3),
            rule_property(audiences_pb2.PROPERTY_RULE_OPERATOR_EQUALS, "plan", "pro"),
        ]),
        audiences_pb2.RuleGroup(rules=[
            rule_event(audiences_pb2.EVENT_RULE_OPERATOR_HAS_DONE, "invite_sent"),
            rule_event(audiences_pb2.EVENT_RULE_OPERATOR_LAST_DONE_WITHIN, "login",
                       within=timedelta(days=7)),
            rule_event(audiences_pb2.EVENT_RULE_OPERATOR_HAS_NOT_DONE, "subscription_cancelled"),
        ]),
    ])


class Generator:
    """Deterministic users and events (seeded), shaped as trackd stores them."""

    def __init__(self, users: int, seed: int = 7) -> None:
        self.users = users
        self.random = random.Random(seed)
        self.now = datetime.now(UTC)
        self.names = list(EVENT_WEIGHTS)
        self.weights = list(EVENT_WEIGHTS.values())
        # Long-tailed activity: user i is picked with weight 1 / (i + 10).
        self.user_weights = [1 / (i + 10) for i in range(users)]

    def user(self, i: int) -> dict[str, Any]:
        signed_up = self.now - timedelta(days=self.random.uniform(0, 400))
        return {
            "project_id": PROJECT, "external_id": f"user-{i:06d}",
            "email": f"user{i}@example.com", "emails": [f"user{i}@example.com"],
            "plan": self.random.choice(PLANS), "role": self.random.choice(ROLES),
            "signed_up_at": signed_up, "created_at": signed_up, "updated_at": self.now,
            "traits": {"seats": self.random.randint(1, 200),
                       "workspaceId": f"ws-{self.random.randrange(5000)}"},
        }

    def events(self, start: int, count: int) -> list[dict[str, Any]]:
        users = self.random.choices(range(self.users), self.user_weights, k=count)
        names = self.random.choices(self.names, self.weights, k=count)
        docs = []
        for offset, (user, name) in enumerate(zip(users, names, strict=True)):
            moment = self.now - timedelta(seconds=self.random.uniform(0, DAYS * 86400))
            docs.append({
                "project_id": PROJECT, "event_id": f"evt-{start + offset}", "name": name,
                "user_id": f"user-{user:06d}", "anonymous_id": None, "timestamp": moment,
                "received_at": moment, "properties": {"n": start + offset, "source": "bench"},
            })
        return docs


async def load(store: Store, gen: Generator, users: int, events: int, chunk: int = 1000,
               writers: int = 8) -> None:
    """Bulk-load the data set (not measured: loading is not what this bench is about).

    The events go in before their secondary indexes (built afterwards, once): inserting
    into five indexes at a time runs at ~800 events/s on the embedded database.
    """
    fast = store.db.with_options(write_concern=WriteConcern(w=1))
    await fast[EVENTS].drop_indexes()
    started = time.monotonic()
    for i in range(0, users, chunk):
        await fast["users"].insert_many([gen.user(j) for j in range(i, min(users, i + chunk))],
                                        ordered=False)
    await store.roster.rebuild()  # written straight in, so enrol them as upserts do
    say(f"  {users:,} users in {time.monotonic() - started:.0f} s")
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    for i in range(0, events, chunk):
        queue.put_nowait(i)
    done = 0

    async def writer() -> None:
        nonlocal done
        while (start := queue.get_nowait() if not queue.empty() else None) is not None:
            await fast[EVENTS].insert_many(gen.events(start, min(chunk, events - start)),
                                           ordered=False)
            done += min(chunk, events - start)
            if done % 100_000 < chunk:
                say(f"  {done:,} / {events:,} events "
                    f"({done / (time.monotonic() - started):,.0f}/s)")

    await asyncio.gather(*(writer() for _ in range(writers)))
    say(f"  loaded in {time.monotonic() - started:.0f} s; building the events indexes")
    await ensure_indexes(store.db)
    say(f"  indexed, {time.monotonic() - started:.0f} s in all")


async def timed(runs: int, call: Callable[[], Awaitable[Any]]) -> tuple[list[int], Any]:
    """Milliseconds per call (as microsecond ints, for percentile) and the last result."""
    micros: list[int] = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = await call()
        micros.append(int((time.perf_counter() - started) * 1e6))
    return sorted(micros), result


def latency_row(label: str, micros: list[int], extra: str = "") -> dict[str, Any]:
    row = {"measurement": label, "runs": len(micros),
           "p50_ms": percentile(micros, 50) / 1000, "p99_ms": percentile(micros, 99) / 1000,
           "mean_ms": statistics.fmean(micros) / 1000, "note": extra}
    say(f"  {label}: p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms {extra}")
    return row


def rss_mib() -> float:
    """This process's resident memory (Linux), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def evaluate(uri: str, database: str, args: argparse.Namespace,
                   path: str) -> list[dict[str, Any]]:
    """Evaluations through a real server reading ``path``: "index" or "events"."""
    store = await connect(uri, database)
    server = await create_server(store, ServerConfig(port=0, audience_index=path == "index"))
    key = (await issue_key(store.keys, PROJECT, ALL_SCOPES)).secret
    metadata = [("authorization", f"Bearer {key}")]
    rows = []
    try:
        if server.audience_index is not None:
            gc.collect()
            before = rss_mib()
            started = time.perf_counter()
            assert await server.audience_index.prepare(PROJECT), "the index did not load"
            elapsed = time.perf_counter() - started
            gc.collect()
            grown = rss_mib() - before
            say(f"  index loaded in {elapsed:.1f} s, +{grown:.0f} MiB resident")
            rows.append({"measurement": "index load (once per project and process)",
                         "seconds": elapsed, "rss_mib": grown})
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = audiences_pb2_grpc.AudienceServiceStub(channel)
            for label, audience in (("seed audience (2 rules)", seed_audience()),
                                    ("five rules, two groups", five_rule_audience())):
                request = audiences_pb2.EvaluateAudienceRequest(audience=audience,
                                                                page_size=100)
                await stub.EvaluateAudience(request, metadata=metadata)  # warm-up
                def call(r: audiences_pb2.EvaluateAudienceRequest = request) -> Any:
                    return stub.EvaluateAudience(r, metadata=metadata)

                micros, response = await timed(args.runs, call)
                rows.append(latency_row(f"evaluate ({path}): {label}", micros,
                                        f"({response.total_count:,} users match)"))
            users = [f"user-{i:06d}" for i in random.Random(3).sample(range(args.users),
                                                                      args.runs)]
            calls = iter(users)
            micros, _ = await timed(args.runs, lambda: stub.MatchUser(
                audiences_pb2.MatchUserRequest(external_id=next(calls),
                                               audience=five_rule_audience()),
                metadata=metadata))
            rows.append(latency_row(f"match one user ({path}): five rules", micros))
    finally:
        await server.stop(5)
        await store.close()
    return rows


class StatsEvents(EventRepository):
    """The alternative design: each flush also upserts per-(user, event) statistics."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.db)
        self._stats = store.db["user_event_stats"]

    async def insert_many(self, docs: list[dict[str, Any]]) -> InsertOutcome:
        outcome = await super().insert_many(docs)
        grouped: dict[tuple[str, str, str], list[datetime]] = {}
        for index, doc in enumerate(docs):
            if index not in outcome.duplicate and doc["user_id"]:
                key = (doc["project_id"], doc["user_id"], doc["name"])
                grouped.setdefault(key, []).append(doc["timestamp"])
        await self._stats.bulk_write([
            UpdateOne({"project_id": p, "user_id": u, "name": n},
                      {"$inc": {"count": len(times)}, "$min": {"first": min(times)},
                       "$max": {"last": max(times)}}, upsert=True)
            for (p, u, n), times in grouped.items()], ordered=False)
        return outcome


async def ingest(uri: str, database: str, args: argparse.Namespace, variant: str,
                 gen: Generator) -> dict[str, Any]:
    store = await connect(uri, database)
    try:
        if variant == "without the audience index":
            await store.db[EVENTS].drop_index(AUDIENCE_INDEX)
        events: EventRepository = store.events
        index = None
        if variant == FOLLOWED:
            index = AudienceIndex(ChangeFeed(store.db), store.audiences)
            assert await index.prepare(PROJECT)
        if variant == "with per-user statistics":
            await store.db["user_event_stats"].create_index(
                [("project_id", 1), ("name", 1), ("user_id", 1)], unique=True)
            events = StatsEvents(store)
        pipeline = WritePipeline(events, PipelineConfig())
        pipeline.start()
        batches = [gen.events(1_000_000_000 + i, 500)
                   for i in range(0, args.ingest_events, 500)]
        pending = iter(batches)
        started = time.perf_counter()

        async def client() -> None:
            for batch in pending:
                await pipeline.write(batch)

        await asyncio.gather(*(client() for _ in range(4)))
        elapsed = time.perf_counter() - started
        await pipeline.close()
        rate = args.ingest_events / elapsed
        say(f"  ingest {variant}: {rate:,.0f} events/s")
        row: dict[str, Any] = {"measurement": f"ingest {variant}", "events_per_s": rate}
        if index is not None:
            view = await index.view(PROJECT)
            assert view is not None
            counted = sum(s.count for name in EVENT_WEIGHTS for s in view.stats(name).values())
            row["index_counted"] = counted
            say(f"  the index counted {counted:,} of the {args.ingest_events:,} events")
            await index.close()
        if variant == "with per-user statistics":
            stats = store.db["user_event_stats"]

            async def seed_from_stats() -> int:
                viewed = set(await stats.distinct(
                    "user_id", {"project_id": PROJECT, "name": "advanced_export_viewed"}))
                used = set(await stats.distinct(
                    "user_id", {"project_id": PROJECT, "name": "advanced_export_used",
                                "user_id": {"$in": list(viewed)}}))
                return len(viewed - used)

            micros, _ = await timed(args.runs, seed_from_stats)
            row["seed_from_stats"] = latency_row(
                "seed audience from statistics (this small data set)", micros)
            queries = store.audiences

            async def seed_from_events() -> int:
                viewed = await queries.event_stats(PROJECT, "advanced_export_viewed")
                used = await queries.event_stats(PROJECT, "advanced_export_used",
                                                 users=set(viewed))
                return len(set(viewed) - set(used))

            micros, _ = await timed(args.runs, seed_from_events)
            row["seed_from_events"] = latency_row(
                "seed audience from raw events (the same data set)", micros)
        return row
    finally:
        await store.client.drop_database(database)
        await store.close()


async def run(uri: str, args: argparse.Namespace) -> dict[str, Any]:
    run_id = os.urandom(3).hex()
    database = f"bench_audiences_{run_id}"
    gen = Generator(args.users)
    results: dict[str, Any] = {"users": args.users, "events": args.events, "runs": args.runs}
    say(f"loading {args.users:,} users and {args.events:,} events over {DAYS} days")
    store = await connect(uri, database)
    try:
        await load(store, gen, args.users, args.events)
        say("evaluating (gRPC EvaluateAudience / MatchUser), from the events, then the index")
        results["evaluation"] = [*await evaluate(uri, database, args, "events"),
                                 *await evaluate(uri, database, args, "index")]
    finally:
        await store.client.drop_database(database)
        await store.close()
    say(f"ingest, {args.ingest_events:,} events in 500-event batches, 4 writers")
    variants = ["with every trackd index", "without the audience index", FOLLOWED,
                "with per-user statistics"]
    rows = {v: await ingest(uri, f"{database}_i{n}", args, v, gen)
            for n, v in enumerate(variants)}
    base = rows["without the audience index"]["events_per_s"]
    results["ingest"] = list(rows.values())
    p50 = {row["measurement"]: row["p50_ms"] for row in results["evaluation"]
           if "p50_ms" in row}
    speedups = {f"{label}: events p50 / index p50":
                p50[f"evaluate (events): {label}"] / p50[f"evaluate (index): {label}"]
                for label in ("seed audience (2 rules)", "five rules, two groups")}
    results["ratios"] = {
        **speedups,
        "ingest with audience index / without": rows["with every trackd index"]["events_per_s"]
        / base,
        "ingest with the audience index following the feed / without audience index":
            rows[FOLLOWED]["events_per_s"] / base,
        "ingest with the audience index following the feed / with every index, no feed":
            rows[FOLLOWED]["events_per_s"] / rows["with every trackd index"]["events_per_s"],
        "ingest with per-user statistics / without audience index":
            rows["with per-user statistics"]["events_per_s"] / base,
    }
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"\nAudiences: {results['users']:,} users, {results['events']:,} events, "
          f"{results['runs']} runs each\n")
    print(f"{'measurement':<52} {'p50 ms':>9} {'p99 ms':>9}  note")
    for row in results["evaluation"]:
        if "seconds" in row:
            print(f"{row['measurement']:<52} {row['seconds']:>8.1f}s  "
                  f"+{row['rss_mib']:.0f} MiB resident")
            continue
        print(f"{row['measurement']:<52} {row['p50_ms']:>9.1f} {row['p99_ms']:>9.1f}  "
              f"{row['note']}")
    print(f"\n{'ingest':<52} {'events/s':>9}")
    for row in results["ingest"]:
        print(f"{row['measurement']:<52} {row['events_per_s']:>9,.0f}")
        for name in ("seed_from_stats", "seed_from_events"):
            if name in row:
                sub = row[name]
                print(f"  {sub['measurement']:<50} p50 {sub['p50_ms']:.1f} ms, "
                      f"p99 {sub['p99_ms']:.1f} ms")
    print()
    for name, value in results["ratios"].items():
        print(f"{name:<60} {value:.2f}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.audiences", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ingest-events", type=int, default=50_000)
    parser.add_argument("--mongodb-uri", default=os.environ.get("MONGODB_URI"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trackd-bench-audiences-") as work:
        if args.mongodb_uri:
            results = asyncio.run(run(args.mongodb_uri, args))
        else:
            with EmbeddedDatabase(Path(work)) as db:
                results = asyncio.run(run(db.uri, args))
    print_table(results)
    out = Path(__file__).parent / "results" / \
        f"audiences-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
