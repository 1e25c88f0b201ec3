"""A busy database is not a dead one: while audiences are evaluated from the events (long
aggregations) and the database answers nothing for a while, every write is still
attempted and acknowledged, nothing answers 503, and the log never says the database is
unreachable.

The real ``trackd serve`` on its own SecantusDB process, audiences read from the events
(``TRACKD_AUDIENCE_INDEX=false``). How long the database takes to answer a ping under an
aggregation depends on the machine; to make "a ping past the bound" certain rather than
likely, the database is also paused (SIGSTOP) for :data:`BUSY_SECONDS` while the
aggregations and writes run, with the ping bound set to :data:`PING_BOUND` seconds (a
setting): several pings go unanswered in a row, fewer than the default number that
declares it down. The pause stays well under the driver's own 2 s connect timeout, which
would otherwise see an outage of its own. The SIGKILL tests (test_database_faults.py,
test_supervision.py) show that a dead database still answers 503 at once.
"""

from __future__ import annotations

import asyncio
import uuid

import aiohttp

from tests.durability.harness import (
    REQUEST_TIMEOUT,
    Database,
    Outcome,
    StartTrackd,
    assert_acked_stored_once,
    event,
    post,
    stored_events,
)

PING_BOUND = "0.2"  # TRACKD_HEALTH_PING_TIMEOUT_SECONDS: seconds
BUSY_SECONDS = 1.5  # > the monitor's 1 s interval + the bound: a ping is certainly slow
SEED_EVENTS = 2000  # events the aggregations read
AUDIENCE = {"groups": [{"rules": [
    {"event": "feature_used", "op": "has_done", "since": "2000-01-01T00:00:00Z"},
    {"event": "signed_up", "op": "has_not_done"}]}]}


async def _evaluate(session: aiohttp.ClientSession, url: str, key: str) -> int:
    async with session.post(f"{url}/api/v1/audiences/evaluate", json=AUDIENCE,
                            headers={"Authorization": f"Bearer {key}"}) as response:
        await response.read()
        return response.status


async def test_a_busy_database_is_not_declared_down(
    database: Database, key: str, start_trackd: StartTrackd,
) -> None:
    trackd = await start_trackd(TRACKD_AUDIENCE_INDEX="false",
                                TRACKD_HEALTH_PING_TIMEOUT_SECONDS=PING_BOUND)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        seeded = []
        for start in range(0, SEED_EVENTS, 500):
            ids = [uuid.uuid4().hex for _ in range(500)]
            body = {"events": [event(start + i, event_id) for i, event_id in enumerate(ids)]}
            outcome = await post(session, trackd.url, key, "/api/v1/events/batch", body, ids)
            assert outcome.status == "202", outcome
            seeded += ids

        busy = asyncio.Event()
        outcomes: list[Outcome] = []
        evaluations: list[int] = []

        async def write() -> None:
            n = 0
            while not busy.is_set() or n < 10:
                event_id = uuid.uuid4().hex
                outcomes.append(await post(session, trackd.url, key, "/api/v1/events",
                                           event(n, event_id), [event_id]))
                n += 1
                await asyncio.sleep(0.05)

        async def evaluate() -> None:
            while not busy.is_set():
                evaluations.append(await _evaluate(session, trackd.url, key))

        async def busy_database() -> None:
            await asyncio.sleep(0.5)  # the aggregations and writes are under way
            await database.pause()
            try:
                await asyncio.sleep(BUSY_SECONDS)
            finally:
                database.resume()
            await asyncio.sleep(1.5)  # and a check or two after it answers again
            busy.set()

        await asyncio.gather(write(), write(), evaluate(), busy_database())

    statuses = sorted({o.status for o in outcomes})
    assert statuses == ["202"], [o for o in outcomes if o.status != "202"][:5]
    assert set(evaluations) == {200}, evaluations
    assert len(outcomes) >= 20
    health = [line for line in trackd.stderr.splitlines() if '"trackd.server.health"' in line]
    assert not [line for line in health if "unreachable" in line or "UNAVAILABLE" in line]
    # A slow ping was seen (the monitor says so once), so the test tested something.
    assert len(health) == 1, health
    assert "database slow" in health[0]
    stored = [doc["event_id"] for doc in stored_events(database)]
    assert_acked_stored_once(seeded + [i for o in outcomes for i in o.ids], stored)
