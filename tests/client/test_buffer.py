"""The queue's batching rules, on the data structure alone: sizes, and nothing
overtaking a user upsert."""

from __future__ import annotations

from trackd.v1 import tracking_pb2, users_pb2
from trackd_client.buffer import Buffer


def event(n: int) -> tracking_pb2.Event:
    return tracking_pb2.Event(event_id=f"e{n}", name="x", anonymous_id="anon")


def test_batches_hold_at_most_batch_size_events_and_wait_for_the_interval() -> None:
    buffer = Buffer(capacity=100, batch_size=3, flush_interval=0.2, max_batch_bytes=1 << 20)
    for n in range(7):
        buffer.add("events", event(n), now=10.0)
    first = buffer.take(now=10.0, force=False)
    second = buffer.take(now=10.0, force=False)
    assert first is not None
    assert second is not None
    assert [first.ids(), second.ids()] == [("e0", "e1", "e2"), ("e3", "e4", "e5")]
    assert buffer.take(now=10.1, force=False) is None  # one event, not due yet
    assert buffer.due_at() == 10.2
    last = buffer.take(now=10.2, force=False)
    assert last is not None
    assert last.ids() == ("e6",)
    assert first.idempotency_key != second.idempotency_key != last.idempotency_key
    assert first.request() is first.request()  # built once: every retry is the same


def test_batches_stay_under_max_batch_bytes() -> None:
    size = event(0).ByteSize()
    buffer = Buffer(capacity=100, batch_size=500, flush_interval=0.2,
                    max_batch_bytes=size * 2)
    for n in range(5):
        buffer.add("events", event(n), now=0.0)
    taken = [buffer.take(now=0.0, force=True) for _ in range(3)]
    assert [b.ids() if b else () for b in taken] == [("e0", "e1"), ("e2", "e3"), ("e4",)]


def test_nothing_overtakes_a_user_upsert() -> None:
    buffer = Buffer(capacity=100, batch_size=2, flush_interval=0.2, max_batch_bytes=1 << 20)
    buffer.add("events", event(1), now=0.0)
    buffer.add("users", users_pb2.User(external_id="u1", anonymous_ids=["anon"]), now=0.0)
    buffer.add("events", event(2), now=0.0)
    buffer.add("events", event(3), now=0.0)
    # A full events batch is due; it stops before the upsert queued after e1.
    before = buffer.take(now=0.0, force=False)
    assert before is not None
    assert before.ids() == ("e1",)
    upsert = buffer.take(now=0.0, force=False)  # then the upsert, before e2 and e3
    assert upsert is not None
    assert upsert.ids() == ("u1",)
    # While it is in flight nothing else goes, and no sender is woken by a timer.
    assert buffer.take(now=1.0, force=True) is None
    assert buffer.due_at() is None
    buffer.finish(upsert, sent=1, failed=0)
    after = buffer.take(now=1.0, force=False)
    assert after is not None
    assert after.ids() == ("e2", "e3")
    buffer.finish(before, sent=1, failed=0)
    buffer.finish(after, sent=2, failed=0)
    stats = buffer.stats()
    assert (stats.queued, stats.sent, stats.pending) == (4, 4, 0)
    assert buffer.done_through(4)
