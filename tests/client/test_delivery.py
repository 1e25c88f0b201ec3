"""Against the real server: batches arrive exactly once, users are upserted, a bad key is
reported once and stops the client, full queues follow their policy, and retries wait at
least the server's RetryInfo."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from tests.client.helpers import Errors, count_by_event_id, stored_user
from trackd.server.app import TrackdServer
from trackd.storage import Store
from trackd_client import AsyncClient, Backoff, Client, QueueFull
from trackd_client.buffer import Batch, Stats
from trackd_client.delivery import failure


async def test_client_stores_every_event_once_in_batches(
    target: str, api_key: str, store: Store, errors: Errors,
) -> None:
    """1,200 events from three threads: three batches of at most 500 each, or more, all
    stored once, with the caller's ids and properties."""
    client = Client(target, api_key, on_error=errors)
    ids: list[str] = []

    def produce(worker: int) -> None:
        for n in range(400):
            ids.append(client.track("feature_used", user_id=f"usr_{n % 7}",
                                    properties={"feature": "export", "n": n, "w": worker}))

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    assert await asyncio.to_thread(client.flush, 30)
    await asyncio.to_thread(client.close)

    assert client.stats() == Stats(queued=1200, sent=1200, retried=0, dropped=0, failed=0,
                                   pending=0)
    assert errors == []
    counts = await count_by_event_id(store)
    assert counts == dict.fromkeys(ids, 1)
    doc = await store.db["events"].find_one({"event_id": ids[0]})
    assert doc is not None
    assert doc["name"] == "feature_used"
    properties = doc["properties"]
    assert isinstance(properties, dict)
    assert properties["feature"] == "export"


async def test_flush_interval_sends_a_partial_batch_without_flush(
    target: str, api_key: str, store: Store,
) -> None:
    async with AsyncClient(target, api_key, flush_interval=0.05) as client:
        event_id = await client.track("signed_up", user_id="usr_1")
        for _ in range(600):  # bounded: 30 s
            if client.stats().sent == 1:
                break
            await asyncio.sleep(0.05)
        assert client.stats().sent == 1
    assert await count_by_event_id(store) == {event_id: 1}


async def test_async_client_tracks_and_identifies(
    target: str, key: str, store: Store, errors: Errors,
) -> None:
    async with AsyncClient(target, key, on_error=errors) as client:
        await client.identify("usr_42", {"plan": "trial", "seats": 3},
                              anonymous_ids=["anon_9"])
        ids = [await client.track("page_viewed", anonymous_id="anon_9",
                                  properties={"n": n}) for n in range(700)]
        assert await client.flush(30)
        await client.identify("usr_42", {"plan": "pro", "seats": None})
    assert client.stats() == Stats(queued=702, sent=702, retried=0, dropped=0, failed=0,
                                   pending=0)
    assert errors == []
    assert await count_by_event_id(store) == dict.fromkeys(ids, 1)
    user = await stored_user(store, "usr_42")
    assert user is not None
    assert user["traits"] == {"plan": "pro"}
    assert "anon_9" in user["anonymous_ids"]
    # The anonymous id was linked before the events were sent: they are the user's.
    assert await store.db["events"].count_documents({"user_id": "usr_42"}) == 700


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_bad_key_is_reported_once_and_stops_the_client(
    target: str, errors: Errors, store: Store, flavour: str,
) -> None:
    settings: dict[str, Any] = {"on_error": errors, "batch_size": 10, "max_in_flight": 1}
    if flavour == "sync":
        client = Client(target, "trk_not_a_key", **settings)
        for n in range(25):
            client.track("signed_up", user_id=f"usr_{n}")
        await asyncio.to_thread(client.flush, 30)
        client.track("signed_up", user_id="usr_late")  # counted failed, not sent
        client.identify("usr_late")
        await asyncio.to_thread(client.close)
    else:
        async with AsyncClient(target, "trk_not_a_key", **settings) as aclient:
            for n in range(25):
                await aclient.track("signed_up", user_id=f"usr_{n}")
            await aclient.flush(30)
            await aclient.track("signed_up", user_id="usr_late")
            await aclient.identify("usr_late")
        stats = aclient.stats()
    stats = client.stats() if flavour == "sync" else stats

    assert len(errors) == 1, errors
    (error,) = errors
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.rpc == "BatchTrack"
    assert error.reason == "API_KEY_INVALID"
    assert len(error.ids) == 10  # the batch the server refused
    assert "trk_not_a_key" not in str(error)
    # Nothing retried; the refused batch, the 15 queued behind it and the late event
    # failed, and so does a user upsert: the key is not accepted for anything.
    assert stats == Stats(queued=27, sent=0, retried=0, dropped=0, failed=27, pending=0)
    assert await count_by_event_id(store) == {}


async def test_a_key_without_users_write_stops_identify_only(
    target: str, api_key: str, store: Store, errors: Errors,
) -> None:
    """PERMISSION_DENIED on BatchUpsertUsers (the key holds only track:events): reported
    once, user upserts stop, events still go."""
    async with AsyncClient(target, api_key, on_error=errors) as client:
        await client.identify("usr_1", {"plan": "pro"})
        assert await client.flush(30)
        await client.identify("usr_2")
        event_id = await client.track("signed_up", user_id="usr_1")
    assert [(e.code, e.rpc, e.reason) for e in errors] == [
        (grpc.StatusCode.PERMISSION_DENIED, "BatchUpsertUsers", "SCOPE_MISSING")]
    assert client.stats() == Stats(queued=3, sent=1, retried=0, dropped=0, failed=2,
                                   pending=0)
    assert await count_by_event_id(store) == {event_id: 1}
    assert await stored_user(store, "usr_1") is None


# --- full queues ---------------------------------------------------------------------------

# Nothing leaves the queue by itself: batches are larger than the queue and the flush
# interval is long, so only flush() (or close()) takes items out.
HELD: dict[str, Any] = {"max_queue_size": 10, "flush_interval": 3600}


async def test_full_queue_drop_counts_and_discards(
    target: str, api_key: str, store: Store,
) -> None:
    client = Client(target, api_key, when_full="drop", **HELD)
    kept = [client.track("signed_up", user_id=f"usr_{n}") for n in range(10)]
    for n in range(5):
        client.track("signed_up", user_id=f"usr_dropped_{n}")
    await asyncio.to_thread(client.close)
    assert client.stats() == Stats(queued=10, sent=10, retried=0, dropped=5, failed=0,
                                   pending=0)
    assert await count_by_event_id(store) == dict.fromkeys(kept, 1)


async def test_full_queue_raise_refuses_at_once(
    target: str, api_key: str, store: Store,
) -> None:
    async with AsyncClient(target, api_key, when_full="raise", **HELD) as client:
        kept = [await client.track("signed_up", user_id=f"usr_{n}") for n in range(10)]
        with pytest.raises(QueueFull, match="holds 10 items"):
            await client.track("signed_up", user_id="usr_11")
        assert client.stats().queued == 10
        assert await client.flush(30)
        kept.append(await client.track("signed_up", user_id="usr_12"))  # room again
    assert client.stats() == Stats(queued=11, sent=11, retried=0, dropped=0, failed=0,
                                   pending=0)
    assert await count_by_event_id(store) == dict.fromkeys(kept, 1)


async def test_full_queue_block_waits_for_room_then_gives_up(
    target: str, api_key: str, store: Store,
) -> None:
    client = Client(target, api_key, when_full="block", block_timeout=0.2, **HELD)
    kept = [client.track("signed_up", user_id=f"usr_{n}") for n in range(10)]
    # Nobody makes room: after block_timeout, QueueFull.
    with pytest.raises(QueueFull):
        await asyncio.to_thread(client.track, "signed_up", user_id="usr_timeout")

    # A caller blocked on the full queue goes on as soon as a flush makes room.
    blocked = Client(target, api_key, when_full="block", block_timeout=60, **HELD)
    first = [blocked.track("signed_up", user_id=f"usr_b{n}") for n in range(10)]
    waiting = asyncio.ensure_future(asyncio.to_thread(blocked.track, "signed_up",
                                                      user_id="usr_waited"))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # still blocked: the queue is full
    flushed = asyncio.ensure_future(asyncio.to_thread(blocked.flush, 30))
    late = await asyncio.wait_for(waiting, 60)
    assert await flushed
    await asyncio.to_thread(blocked.close)
    await asyncio.to_thread(client.close)

    assert client.stats() == Stats(queued=10, sent=10, retried=0, dropped=0, failed=0,
                                   pending=0)
    assert blocked.stats() == Stats(queued=11, sent=11, retried=0, dropped=0, failed=0,
                                    pending=0)
    assert await count_by_event_id(store) == dict.fromkeys([*kept, *first, late], 1)


# --- retries -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RecordingBackoff(Backoff):
    """Backoff that records the server delay it was given and the delay it chose."""

    calls: list[tuple[float | None, float]] = dataclasses.field(default_factory=list)

    def delay(self, attempt: int, server_delay: float | None = None,
              rng: random.Random | None = None) -> float:
        chosen = super().delay(attempt, server_delay, rng)
        self.calls.append((server_delay, chosen))
        return chosen


async def test_retries_wait_at_least_the_servers_retry_info(
    events_down: tuple[TrackdServer, Any], api_key: str, errors: Errors,
) -> None:
    """The events collection is unreachable: UNAVAILABLE with RetryInfo(1 s) each time.
    Each retry waits at least that (not the 1 ms the backoff alone would pick); after
    max_attempts the batch fails, reported once."""
    server, _ = events_down
    backoff = RecordingBackoff(base=0.001, cap=0.001)
    async with AsyncClient(f"127.0.0.1:{server.port}", api_key, backoff=backoff,
                           max_attempts=3, on_error=errors) as client:
        await client.track("signed_up", user_id="usr_1")
        assert await client.flush(60)
    assert backoff.calls == [(1.0, 1.0), (1.0, 1.0)]
    assert [(e.code, e.reason) for e in errors] == [(grpc.StatusCode.UNAVAILABLE,
                                                     "UNAVAILABLE")]
    assert client.stats() == Stats(queued=1, sent=0, retried=2, dropped=0, failed=1,
                                   pending=0)


def test_backoff_is_full_jitter_capped_and_floored_by_retry_info() -> None:
    backoff = Backoff(base=0.1, cap=2.0)
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(2.0, 0.1 * 2**attempt)
        delays = [backoff.delay(attempt, None, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # spread over the range, not fixed
        assert all(backoff.delay(attempt, 3.0, rng) >= 3.0 for _ in range(50))


@pytest.mark.parametrize(("code", "retryable", "stops"), [
    (grpc.StatusCode.UNAVAILABLE, True, False),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, True, False),
    (grpc.StatusCode.DEADLINE_EXCEEDED, True, False),
    (grpc.StatusCode.ABORTED, True, False),
    (grpc.StatusCode.INVALID_ARGUMENT, False, False),
    (grpc.StatusCode.NOT_FOUND, False, False),
    (grpc.StatusCode.INTERNAL, False, False),
    (grpc.StatusCode.UNAUTHENTICATED, False, True),
    (grpc.StatusCode.PERMISSION_DENIED, False, True),
])
def test_which_codes_are_retried(code: grpc.StatusCode, retryable: bool, stops: bool) -> None:
    batch = Batch("events", [], 1)
    found = failure(batch, code, "", ())
    assert (found.retryable, found.stops) == (retryable, stops)


async def test_an_events_time_is_fixed_when_it_is_tracked(
    target: str, api_key: str, store: Store,
) -> None:
    """An event's time is the caller's, or the time of ``track()``: not when it is sent."""
    given = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    before = datetime.now(UTC).replace(microsecond=0)
    async with AsyncClient(target, api_key, flush_interval=3600) as client:
        explicit = await client.track("signed_up", user_id="usr_1", timestamp=given)
        implicit = await client.track("signed_up", user_id="usr_1")
        tracked = datetime.now(UTC)
        # Sent only now, by the flush at close (the flush interval is an hour).
    docs = {doc["event_id"]: doc async for doc in store.db["events"].find({})}

    def utc(value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    assert utc(docs[explicit]["timestamp"]) == given
    assert before <= utc(docs[implicit]["timestamp"]) <= tracked
    # The database keeps milliseconds.
    assert utc(docs[implicit]["received_at"]) >= tracked.replace(
        microsecond=tracked.microsecond // 1000 * 1000)


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_close_gives_up_on_what_it_cannot_send_in_time_and_says_so(
    errors: Errors, flavour: str,
) -> None:
    """Nothing listens: every attempt is UNAVAILABLE and retried, until close() runs out
    of time; then the events count as failed and are reported, once."""
    settings: dict[str, Any] = {"on_error": errors, "backoff": Backoff(base=0.01, cap=0.05)}
    if flavour == "sync":
        client = Client("127.0.0.1:1", "trk_unused", **settings)
        ids = {client.track("signed_up", user_id=f"usr_{n}") for n in range(3)}
        await asyncio.to_thread(client.close, 0.5)
        stats = client.stats()
    else:
        aclient = AsyncClient("127.0.0.1:1", "trk_unused", **settings)
        ids = {await aclient.track("signed_up", user_id=f"usr_{n}") for n in range(3)}
        await aclient.close(0.5)
        stats = aclient.stats()
    assert (stats.queued, stats.sent, stats.failed, stats.pending) == (3, 0, 3, 0)
    assert stats.retried > 0
    assert [(e.code, set(e.ids)) for e in errors] == [(None, ids)]
