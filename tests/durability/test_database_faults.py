"""The database dies or hangs under load: trackd answers 503/UNAVAILABLE, never a false 2xx,
recovers by itself, and every acknowledged event is stored exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import aiohttp
import pytest

from tests.durability.conftest import StartTrackd
from tests.durability.harness import (
    DISCONNECTED,
    REQUEST_TIMEOUT,
    TIMEOUT,
    Database,
    Load,
    Outcome,
    assert_acked_stored_once,
    assert_unavailable,
    event,
    post,
    stored_events,
    summary,
    until,
)

WARM_UP_ACKS = 300  # acknowledged events before the fault
DOWN_ANSWERS = 60  # requests sent after the fault and answered, before the database returns
DOWN_AT_LEAST = 3.0  # seconds down: past the driver's 1 s server selection and the auth cache
RECOVERED_ACKS = 100  # acknowledged events sent after the database is back


async def test_database_sigkill_mid_load_answers_503_then_recovers_keeping_every_ack(
    database: Database, key: str, start_trackd: StartTrackd,
) -> None:
    """SIGKILL the database under REST and gRPC load, keep it down, start it again on the
    same port and data: 503/UNAVAILABLE meanwhile, the same trackd recovers by itself, and
    every acknowledged event is stored exactly once."""
    # A short auth cache, so that while the database is down key lookups fail too.
    trackd = await start_trackd(TRACKD_AUTH_CACHE_SECONDS="1")
    async with Load(trackd, key, workers=16, grpc_workers=4) as load:
        await until(lambda: len(load.acked_ids()) >= WARM_UP_ACKS, "acks before the fault",
                    detail=load.summary)

        database.kill()
        killed = time.monotonic()

        def down_long_enough() -> bool:
            answered = [o for o in load.outcomes if o.sent >= killed]
            return len(answered) >= DOWN_ANSWERS and time.monotonic() - killed >= DOWN_AT_LEAST \
                and any(o.status.startswith("grpc:") for o in answered)

        await until(down_long_enough, "answers while the database is down",
                    detail=load.summary)

        restarting = time.monotonic()
        await database.start()  # the same port and data directory
        restarted = time.monotonic()
        # The same trackd process recovers by itself.
        await until(lambda: load.count(lambda o: o.acked and o.sent >= restarted)
                    >= RECOVERED_ACKS, "acks after the database is back",
                    detail=lambda: f"{load.summary()}\n{trackd.output()}")
        await load.stop()

    outcomes = load.outcomes
    # While it was down: every request sent got 503/UNAVAILABLE with a retry hint.
    while_down = [o for o in outcomes if o.sent >= killed and o.answered < restarting]
    assert len(while_down) >= DOWN_ANSWERS
    assert_unavailable(while_down)
    assert {o.status for o in while_down} == {"503", "grpc:UNAVAILABLE"}
    # Everything else was acknowledged or 503/UNAVAILABLE: no timeout, no other error.
    assert_unavailable([o for o in outcomes if not o.acked])
    acked = load.acked_ids()
    assert len(acked) >= WARM_UP_ACKS + RECOVERED_ACKS

    stored = [doc["event_id"] for doc in stored_events(database)]
    assert_acked_stored_once(acked, stored)
    assert set(stored) <= set(load.sent_ids())


# --- a client that retries ------------------------------------------------------------------

RETRY_EVENTS = 1000
RETRY_WORKERS = 16
RETRY_DOWN_ANSWERS = RETRY_WORKERS  # failed attempts before the database returns
RETRY_PAUSE = 0.1  # between a failed attempt and its retry
RETRY_BOUND = 120.0  # for every event to be acknowledged once the database is back

# When the database dies while a request holds its Idempotency-Key, the key's pending
# record can outlive the restart (its release was lost with the database). A retry through
# the same trackd must take it over at once, not answer 409 idempotency_key_in_use until
# the record's lease runs out: any 409 here fails the test.
RETRYABLE = ("503", TIMEOUT, DISCONNECTED)


@pytest.mark.parametrize("identity", ["event_id", "idempotency_key"])
async def test_client_retrying_through_database_kill_stores_each_event_once(
    database: Database, key: str, start_trackd: StartTrackd, identity: str,
) -> None:
    """Each event is sent until acknowledged: after a 503, a timeout or a dropped connection,
    again with the same event id (or, without one, the same Idempotency-Key)."""
    trackd = await start_trackd(TRACKD_AUTH_CACHE_SECONDS="1")
    run = uuid.uuid4().hex[:10]
    todo = list(range(RETRY_EVENTS))
    attempts: list[Outcome] = []
    acked: set[int] = set()

    async def client(session: aiohttp.ClientSession) -> None:
        while todo:
            n = todo.pop()
            event_id = f"evt-{run}-{n}"
            while True:
                if identity == "event_id":
                    outcome = await post(session, trackd.url, key, "/api/v1/events",
                                         event(n, event_id), [event_id])
                else:
                    outcome = await post(
                        session, trackd.url, key, "/api/v1/events", event(n), [event_id],
                        idempotency_key=str(uuid.uuid5(uuid.NAMESPACE_URL, event_id)))
                attempts.append(outcome)
                if outcome.acked:
                    acked.add(n)
                    break
                assert outcome.status in RETRYABLE, outcome
                await asyncio.sleep(RETRY_PAUSE)

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=timeout) as session:
        clients = [asyncio.create_task(client(session)) for _ in range(RETRY_WORKERS)]
        try:
            await until(lambda: len(acked) >= WARM_UP_ACKS, "acks before the fault")
            database.kill()
            killed = time.monotonic()
            await until(lambda: sum(1 for o in attempts if o.sent >= killed) >= RETRY_DOWN_ANSWERS
                        and time.monotonic() - killed >= DOWN_AT_LEAST,
                        "failures while the database is down")
            await database.start()
            await until(lambda: all(c.done() for c in clients), "every event acknowledged",
                        bound=RETRY_BOUND, detail=lambda: summary(attempts))
            for c in clients:
                c.result()  # a client that met an unexpected answer fails the test
        finally:
            for c in clients:
                c.cancel()
            await asyncio.gather(*clients, return_exceptions=True)

    assert any(not o.acked for o in attempts)  # the fault made the client retry
    assert acked == set(range(RETRY_EVENTS))
    docs = stored_events(database)
    stored = Counter(doc["properties"]["n"] for doc in docs)
    # One stored event per logical event, whichever way it was identified; never two.
    assert len({doc["event_id"] for doc in docs}) == len(docs)
    assert [n for n in acked if stored[n] != 1] == []
    assert stored == Counter(range(RETRY_EVENTS))


# --- the pipeline's queue bound --------------------------------------------------------------

MAX_QUEUED_EVENTS = 200
QUEUE_BATCH = 20  # events per request: ten requests fill the queue
QUEUE_WORKERS = 48  # requests in flight at once: room for 960 events, far past the bound
OVERFLOW_ANSWERS = 1000  # 503/UNAVAILABLE answers to wait for while the database hangs...
HANG_AT_MOST = 5.0  # ...but let it hang no longer (seconds); at least this many, twice the
MIN_OVERFLOW_ANSWERS = 104  # callers there are, show the callers were not simply queued
RSS_LIMIT = 1024**3  # a sanity bound on trackd's memory, not a measurement


async def test_queue_bound_answers_503_while_the_database_hangs(
    database: Database, key: str, start_trackd: StartTrackd,
) -> None:
    """A SIGSTOPped database never answers; trackd queues at most MAX_QUEUED_EVENTS events
    and answers everything beyond them with 503/UNAVAILABLE at once, in bounded memory."""
    # A long auth cache keeps key lookups off the hung database: this is about the queue.
    trackd = await start_trackd(TRACKD_MAX_QUEUED_EVENTS=str(MAX_QUEUED_EVENTS),
                                TRACKD_AUTH_CACHE_SECONDS="600")
    rss = [trackd.rss()]
    async with Load(trackd, key, workers=QUEUE_WORKERS, batch=QUEUE_BATCH,
                    grpc_workers=4) as load:
        await until(lambda: len(load.acked_ids()) >= WARM_UP_ACKS, "acks before the fault",
                    detail=load.summary)

        await database.pause()
        paused = time.monotonic()

        def overflowed() -> bool:
            # A hang of more than ~10 s would be noticed by the driver's heartbeat and
            # become an outage; this is about the queue, so the hang stays short.
            rss.append(trackd.rss())
            return time.monotonic() - paused >= HANG_AT_MOST or \
                load.count(lambda o: o.sent >= paused and o.unavailable) >= OVERFLOW_ANSWERS

        await until(overflowed, "503s while the database hangs", detail=load.summary)
        resuming = time.monotonic()
        database.resume()
        resumed = time.monotonic()
        await until(lambda: load.count(lambda o: o.acked and o.sent >= resumed)
                    >= RECOVERED_ACKS // QUEUE_BATCH, "acks after the database resumed",
                    detail=load.summary)
        rss.append(trackd.rss())
        await load.stop()

    outcomes = load.outcomes
    while_hung = [o for o in outcomes if o.sent >= paused and o.answered < resuming]
    assert len(while_hung) >= MIN_OVERFLOW_ANSWERS >= 2 * (QUEUE_WORKERS + 4)
    assert_unavailable(while_hung)
    # It was the queue bound that answered them (not an outage the driver noticed).
    assert any("write queue is full" in o.detail for o in while_hung)
    # Nothing timed out, nothing but acknowledgements and 503/UNAVAILABLE.
    assert_unavailable([o for o in outcomes if not o.acked])
    assert max(rss) < RSS_LIMIT

    stored = [doc["event_id"] for doc in stored_events(database)]
    assert_acked_stored_once(load.acked_ids(), stored)
