"""``bench/run decoders``: what decoding and validating a REST body costs, per event, with
pydantic (a ``TypeAdapter`` over the dialect's TypedDict, ``validate_json`` from the raw
bytes, strict) and with msgspec (the same TypedDict compiled by
:class:`trackd.gateway.decoding.BodySchema`: ``msgspec.json.Decoder``, strict), on the
bodies the ingest bench sends (:func:`bench.floor.body`, the bytes of ``bench/post.lua``):
one VibeFollow event and a batch of ``--batch`` events.

Then the same end to end as far as the gateway goes before its RPC: decode, validate and
convert every event into the ``BatchTrackRequest`` (or ``TrackEventRequest``) the gateway
sends, with trackd's own conversion (:mod:`trackd.gateway.dialects.vibefollow`). And the
same batch in the shapes of the SDK dialects (Segment, PostHog, Databuddy, Amplitude),
decoded and validated. Prints
microseconds of CPU per event, best of five rounds, and pydantic ÷ msgspec.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from bench.floor import body
from trackd.gateway.decoding import BodySchema
from trackd.gateway.dialects import amplitude, databuddy, posthog, segment, vibefollow
from trackd.v1 import tracking_pb2


def per_event(work: Callable[[], object], events: int, seconds: float) -> float:
    """Microseconds of this process's CPU per event, best of five rounds of about
    ``seconds`` / 5 each: CPU time, not wall time, so that a loaded machine's other
    processes do not count (they still share its caches)."""
    started = time.process_time()
    work()
    once = max(time.process_time() - started, 1e-6)
    rounds = max(1, int(seconds / 5 / once))
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(rounds):
            work()
        best = min(best, (time.process_time() - started) / rounds)
    return best / events * 1e6


def _batch_request(items: list[Any]) -> tracking_pb2.BatchTrackRequest:
    return tracking_pb2.BatchTrackRequest(
        events=[vibefollow._event(item, f"events[{i}].")
                for i, item in enumerate(items)])


def _single_request(item: Any) -> tracking_pb2.TrackEventRequest:
    return tracking_pb2.TrackEventRequest(event=vibefollow._event(item, ""))


def _measure(label: str, schema: BodySchema[Any], raw: bytes, events: int,
             convert: Callable[[Any], object],
             seconds: float) -> list[tuple[str, int, float, float]]:
    assert schema.validate_json(raw) == schema.adapter.validate_json(raw)
    return [
        (f"decode + validate, {label}", events,
         per_event(lambda: schema.adapter.validate_json(raw), events, seconds),
         per_event(lambda: schema.validate_json(raw), events, seconds)),
        (f"decode + validate + convert to Events, {label}", events,
         per_event(lambda: convert(schema.adapter.validate_json(raw)), events, seconds),
         per_event(lambda: convert(schema.validate_json(raw)), events, seconds)),
    ]


def _vendor_bodies(batch: int) -> list[tuple[str, BodySchema[Any], bytes]]:
    """A batch of the same events in the other SDK dialects' shapes, as their SDKs send
    them (times, library context)."""
    when = "2026-12-07T10:30:00.123Z"
    props = [{"plan": "trial", "source": "organic", "n": n} for n in range(batch)]
    return [
        ("Segment batch", segment.BATCH, orjson.dumps({"batch": [
            {"type": "track", "messageId": f"m{n}", "userId": f"usr_{n}",
             "event": "user_signed_up", "properties": p, "timestamp": when,
             "originalTimestamp": when, "sentAt": when,
             "context": {"library": {"name": "analytics-node", "version": "2.1.0"}}}
            for n, p in enumerate(props)], "sentAt": when})),
        ("PostHog batch", posthog.BODY, orjson.dumps({"api_key": "k", "batch": [
            {"event": "user_signed_up", "distinct_id": f"usr_{n}", "uuid": f"u{n}",
             "timestamp": when, "properties": {**p, "$lib": "posthog-python"}}
            for n, p in enumerate(props)]})),
        ("Databuddy array", databuddy.TRACK_BODY, orjson.dumps([
            {"name": "user_signed_up", "anonymousId": f"anon_{n}", "eventId": f"e{n}",
             "timestamp": 1_796_000_000_000 + n, "properties": p}
            for n, p in enumerate(props)])),
        ("Amplitude (pydantic alone: fields kept)", amplitude.BODY, orjson.dumps(
            {"api_key": "k", "events": [
                {"event_type": "user_signed_up", "user_id": f"usr_{n}", "insert_id": f"i{n}",
                 "time": 1_796_000_000_000 + n, "event_properties": p, "platform": "Web"}
                for n, p in enumerate(props)]})),
    ]


def rows(batch: int, seconds: float) -> list[tuple[str, int, float, float]]:
    """(label, events, pydantic µs/event, msgspec µs/event) for each measurement."""
    out = [
        *_measure("batch", vibefollow.BATCH, body("decoders", batch), batch,
                  lambda value: _batch_request(value["events"]), seconds),
        *_measure("single", vibefollow.EVENT, body("decoders", 0), 1, _single_request,
                  seconds),
    ]
    out.extend(_decode_only(f"{label}: decode + validate", schema, raw, batch, seconds)
               for label, schema, raw in _vendor_bodies(batch))
    return out


def _decode_only(label: str, schema: BodySchema[Any], raw: bytes, events: int,
                 seconds: float) -> tuple[str, int, float, float]:
    assert schema.validate_json(raw) == schema.adapter.validate_json(raw)
    return (label, events, per_event(lambda: schema.adapter.validate_json(raw), events, seconds),
            per_event(lambda: schema.validate_json(raw), events, seconds))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run decoders", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=500, help="events per batch (default 500)")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="seconds per measurement (default 2)")
    args = parser.parse_args(argv)
    print(f"{'body':<56} {'events':>6} {'pydantic µs/ev':>15} "
          f"{'msgspec µs/ev':>14} {'ratio':>6}")
    for label, events, pydantic_us, msgspec_us in rows(args.batch, args.seconds):
        print(f"{label:<56} {events:>6} {pydantic_us:>15.2f} {msgspec_us:>14.2f} "
              f"{pydantic_us / msgspec_us:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
