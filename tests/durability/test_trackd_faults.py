"""trackd itself is stopped under load: SIGTERM drains and exits 0, SIGKILL loses nothing
that was acknowledged."""

from __future__ import annotations

import signal
import time

from tests.durability.harness import (
    DISCONNECTED,
    STOPPING_LINE,
    Database,
    Load,
    StartTrackd,
    assert_acked_stored_once,
    stored_events,
    until,
)

WARM_UP_ACKS = 300
WORKERS = 16
SETTLE = 1.0  # seconds every client's request has been stuck before the SIGTERM


async def test_sigterm_mid_load_finishes_in_flight_requests_and_exits_0(
    database: Database, key: str, start_trackd: StartTrackd,
) -> None:
    """SIGTERM while every client has a request inside trackd: those are answered, new
    connections are refused, trackd exits 0, and every acknowledged event is stored."""
    trackd = await start_trackd()
    async with Load(trackd, key, workers=WORKERS, until_disconnected=True) as load:
        await until(lambda: len(load.acked_ids()) >= WARM_UP_ACKS, "acks before the signal",
                    detail=load.summary)

        # Hold every client's request inside trackd: the database stops answering. Then
        # SIGTERM, and let the database go on once trackd has begun to shut down.
        await database.pause()
        await until(lambda: len(load.in_flight) == WORKERS and
                    time.monotonic() - max(load.in_flight.values()) >= SETTLE,
                    "every client's request to be held", detail=load.summary)
        in_flight = len(load.in_flight)
        trackd.signal(signal.SIGTERM)
        signalled = time.monotonic()
        await until(lambda: STOPPING_LINE in trackd.stderr, "trackd to begin stopping",
                    detail=trackd.output)
        database.resume()

        # The clients keep sending until each finds the server gone.
        status = await trackd.exit_status()
        await until(lambda: load.finished, "every client to find trackd gone",
                    detail=load.summary)
        await load.stop()

    assert status == 0, trackd.output()
    assert "stopped cleanly" in trackd.stderr
    outcomes = load.outcomes
    # Every request sent before the signal was answered: the ones in flight were finished.
    before = [o for o in outcomes if o.sent < signalled]
    assert [o for o in before if o.status not in ("202", "503")] == []
    finished = [o for o in before if o.answered >= signalled]
    assert len(finished) == in_flight == WORKERS
    # After it: answered, or refused once trackd stopped accepting.
    assert [o for o in outcomes if o.status not in ("202", "503", DISCONNECTED)] == []
    assert load.count(lambda o: o.status == DISCONNECTED) == WORKERS

    stored = [doc["event_id"] for doc in stored_events(database)]
    assert_acked_stored_once(load.acked_ids(), stored)


async def test_sigkill_mid_load_keeps_every_acknowledged_event(
    database: Database, key: str, start_trackd: StartTrackd,
) -> None:
    """SIGKILL trackd under load: every event it acknowledged before dying is stored."""
    trackd = await start_trackd()
    async with Load(trackd, key, workers=WORKERS, until_disconnected=True) as load:
        await until(lambda: len(load.acked_ids()) >= WARM_UP_ACKS, "acks before the kill",
                    detail=load.summary)
        trackd.signal(signal.SIGKILL)
        assert await trackd.exit_status() == -signal.SIGKILL
        await until(lambda: load.finished, "every client to find trackd gone",
                    detail=load.summary)
        await load.stop()

    outcomes = load.outcomes
    # Acknowledged (necessarily before the kill), or cut off by it: nothing else.
    assert [o for o in outcomes if o.status not in ("202", DISCONNECTED)] == []
    acked = load.acked_ids()
    assert len(acked) >= WARM_UP_ACKS

    stored = [doc["event_id"] for doc in stored_events(database)]
    assert_acked_stored_once(acked, stored)
    assert set(stored) <= set(load.sent_ids())
