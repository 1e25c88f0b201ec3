"""How a batch's properties cross the hop: ``google.protobuf.Struct`` against the
properties as one JSON-encoded ``bytes`` value per event (``Event.properties_json``, what
the gateway sends since issue 14), CPU per event of each half.

In one process, no network and no database, ``time.process_time`` around each half of a
500-event VibeFollow batch that the gateway has already parsed (orjson, once, for the
body's validation):

- ``struct``: gateway ``fill_struct`` and ``BatchTrackRequest`` encoding; server decoding
  and the Struct walk of :class:`trackd.server.validation.EventDocuments` (with its JSON
  size check);
- ``json bytes``: the gateway's :func:`trackd.gateway.convert.properties_json` (the same checks
  as ``fill_struct``, then ``orjson.dumps``) into ``properties_json`` and the encoding;
  the server decodes and :class:`trackd.server.validation.EventDocuments` ``orjson.loads`` the
  bytes (the second and last parse) and walks the plain dict by the Struct's rules.

``python -m bench.hop_batch [--events 500] [--rounds 20]`` prints the table; ``bench/run
hop`` runs it after the servers and reports it with their rows.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from trackd.gateway.convert import fill_struct, properties_json
from trackd.server.validation import EventDocuments
from trackd.v1 import tracking_pb2

SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {
    # bench/post.lua's event: what every other row of the bench sends.
    "3 flat properties": lambda n: {"plan": "trial", "source": "organic", "n": n},
    "20 properties, nested": lambda n: {
        **{f"k{i}": f"value {i} of {n}" for i in range(12)},
        "price": 19.99, "qty": n, "ok": True, "none": None,
        "cart": {"items": [{"sku": f"s{i}", "q": i} for i in range(3)], "total": 59.97},
        "tags": ["a", "b", "c"], "utm": {"source": "ads", "medium": "cpc", "campaign": "x"},
        "nested": {"a": {"b": {"c": n}}},
    },
}


def documents(request: tracking_pb2.BatchTrackRequest, now: datetime) -> list[Any]:
    """The server's half: the batch's event documents (what TrackingService builds);
    the violations found."""
    builder = EventDocuments("p", scope="BatchTrack", idempotency_key="", via="grpc",
                             request_id="", received_at=now)
    builder.documents(request.events)
    return builder.violations


def measure(shape: str, events: int, rounds: int) -> dict[str, float]:
    """µs of CPU per event: gateway and server halves, for both encodings."""
    bodies: list[dict[str, Any]] = [{"name": "user_signed_up", "external_user_id": f"usr_{n}",
               "event_id": f"e{n}", "properties": SHAPES[shape](n)} for n in range(events)]
    now = datetime.now(UTC)
    timings = {"struct.gateway": 0.0, "struct.server": 0.0,
               "json.gateway": 0.0, "json.server": 0.0}
    for _ in range(rounds):
        started = time.process_time()
        request = tracking_pb2.BatchTrackRequest()
        for body in bodies:
            event = request.events.add(name=body["name"], event_id=body["event_id"],
                                       external_user_id=body["external_user_id"])
            fill_struct(event.properties, body["properties"], "properties")
        wire = request.SerializeToString()
        middle = time.process_time()
        decoded = tracking_pb2.BatchTrackRequest.FromString(wire)
        violations = documents(decoded, now)
        done = time.process_time()
        timings["struct.gateway"] += middle - started
        timings["struct.server"] += done - middle

        started = time.process_time()
        request = tracking_pb2.BatchTrackRequest()
        for body in bodies:
            request.events.add(name=body["name"], event_id=body["event_id"],
                               external_user_id=body["external_user_id"],
                               properties_json=properties_json(body["properties"],
                                                               "properties"))
        wire = request.SerializeToString()
        middle = time.process_time()
        decoded = tracking_pb2.BatchTrackRequest.FromString(wire)
        violations = documents(decoded, now)
        done = time.process_time()
        timings["json.gateway"] += middle - started
        timings["json.server"] += done - middle
    assert not violations, violations
    scale = 1e6 / (events * rounds)
    return {name: seconds * scale for name, seconds in timings.items()}


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["batch properties across the hop (µs CPU per event, one process, no I/O)",
             f"{'properties':<24} {'encoding':<11} {'gateway':>8} {'server':>8} {'total':>8}",
             "-" * 63]
    for shape, t in results.items():
        for name, label in (("struct", "Struct"), ("json", "JSON bytes")):
            gateway, server = t[f"{name}.gateway"], t[f"{name}.server"]
            lines.append(f"{shape:<24} {label:<11} {gateway:>8.1f} {server:>8.1f} "
                         f"{gateway + server:>8.1f}")
    return "\n".join(lines)


def run(events: int = 500, rounds: int = 20) -> dict[str, dict[str, float]]:
    return {shape: measure(shape, events, rounds) for shape in SHAPES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(table(run(args.events, args.rounds)))


if __name__ == "__main__":
    main()
