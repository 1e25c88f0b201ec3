"""The raw-driver baseline: PyMongo's Async API writing straight to the database.

``python -m bench.db_load --mode insert_one|insert_many ...`` writes documents shaped like
trackd's (same collection name, same indexes, same write concern ``{w: "majority",
j: true}``) with ``--concurrency`` writers, and prints a :class:`bench.loadgen.LoadResult`.
It is what trackd's numbers are divided by: the database's own speed, nothing in between.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient, WriteConcern

from bench.loadgen import LoadResult, add_window_args, event_fields, event_id, run, run_window
from trackd.storage.indexes import EVENTS, ensure_indexes

DURABLE = WriteConcern(w="majority", j=True)


def document(run_id: str, proc_index: int, seq: int) -> dict[str, Any]:
    """One event as trackd stores it."""
    fields = event_fields(seq)
    now = datetime.now(UTC)
    return {
        "project_id": "bench",
        "event_id": event_id(run_id, proc_index, seq),
        "name": fields["name"],
        "user_id": fields["external_user_id"],
        "anonymous_id": None,
        "timestamp": now,
        "received_at": now,
        "properties": fields["properties"],
    }


async def main(args: argparse.Namespace) -> LoadResult:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        args.uri, maxPoolSize=max(100, args.concurrency), appname="trackd-bench")
    db = client.get_database(args.database, write_concern=DURABLE)
    await ensure_indexes(db)
    events = db[EVENTS]
    batch: int = args.batch

    async def insert_one(seq: int) -> int:
        await events.insert_one(document(args.run_id, args.proc_index, seq))
        return 1

    async def insert_many(seq: int) -> int:
        docs = [document(args.run_id, args.proc_index, seq * batch + i) for i in range(batch)]
        await events.insert_many(docs, ordered=False)
        return batch

    try:
        op = insert_one if args.mode == "insert_one" else insert_many
        return await run_window(op, args.concurrency, args.start, args.end)
    finally:
        await client.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--mode", choices=("insert_one", "insert_many"), required=True)
    parser.add_argument("--batch", type=int, default=500, help="documents per insert_many")
    add_window_args(parser)
    run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
