"""10,000 events from several threads through a SIGKILL of the database: the SDK retries
until the database is back, and every event is stored exactly once.

Real processes: SecantusDB and ``trackd serve`` (tests/durability/harness.py); the
database is killed under load, kept down past the driver's server selection timeout and
started again on the same port and data.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

from tests.durability.harness import Database, StartTrackd, stored_events, until
from trackd_client import Client, DeliveryError

EVENTS = 10_000
THREADS = 4
BEFORE_KILL = 1_000  # events stored before the database is killed
DOWN_AT_LEAST_SECONDS = 3.0  # past the driver's 2 s server selection and the auth cache
FLUSH_BOUND = 180.0


async def test_ten_thousand_events_through_a_database_kill_are_stored_once(
    database: Database, database_key: str, start_trackd: StartTrackd,
) -> None:
    trackd = await start_trackd(TRACKD_AUTH_CACHE_SECONDS="1")
    errors: list[DeliveryError] = []
    # A queue larger than the whole load: producers never block while the database is
    # down; small batches, so many are in flight or retried across the fault.
    client = Client(f"127.0.0.1:{trackd.grpc_port}", database_key, batch_size=100,
                    flush_interval=0.05, max_queue_size=EVENTS, on_error=errors.append)
    ids: list[list[str]] = [[] for _ in range(THREADS)]
    stop = threading.Event()

    def produce(worker: int) -> None:
        for n in range(worker, EVENTS, THREADS):
            ids[worker].append(client.track("feature_used", user_id=f"usr_{n % 97}",
                                            properties={"feature": "export", "n": n}))
            if n % 20 == worker:
                stop.wait(0.01)  # paced, so events keep coming through the fault

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        await until(lambda: client.stats().sent >= BEFORE_KILL, "events before the fault",
                    detail=lambda: str(client.stats()))
        database.kill()
        killed = time.monotonic()
        await until(lambda: time.monotonic() - killed >= DOWN_AT_LEAST_SECONDS
                    and client.stats().retried > 0, "retries while the database is down",
                    detail=lambda: str(client.stats()))
        await database.start()
        for thread in threads:
            await asyncio.to_thread(thread.join, FLUSH_BOUND)
        assert await asyncio.to_thread(client.flush, FLUSH_BOUND), client.stats()
    finally:
        stop.set()
        await asyncio.to_thread(client.close, 0)

    stats = client.stats()
    assert errors == []
    assert (stats.queued, stats.sent, stats.failed, stats.dropped, stats.pending) == \
        (EVENTS, EVENTS, 0, 0, 0)
    assert stats.retried > 0
    tracked = [event_id for worker in ids for event_id in worker]
    assert len(set(tracked)) == EVENTS
    docs = stored_events(database)
    assert Counter(doc["event_id"] for doc in docs) == Counter(tracked)  # each exactly once
    assert sorted(doc["properties"]["n"] for doc in docs) == list(range(EVENTS))
