"""The Python floor: the least CPU a Python ingest path can spend on the bench's events.

In this process, with no network, no event loop and no database: parse the request body
once with orjson, check the few fields and limits trackd checks (name required, lengths
of name and ids, a user or anonymous id, properties an object of at most
``MAX_PROPERTY_KEYS`` keys), build the one dict per event trackd stores, and encode it to
BSON in C (``bson.encode``, as PyMongo's ``insert_many`` does per document). The bodies
are the bytes wrk sends (``bench/post.lua``: the same fields, unique ids), a batch of
``--batch`` events and a single event.

:func:`measure` loops over that work for a window and returns a
:class:`bench.report.Measurement` whose server CPU is this process's own
(``time.process_time``), so every trackd row has its floor beside it. Imports
trackd's limits from :mod:`trackd.server.validation` (one place for each) and nothing else of
trackd.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import bson
import orjson

from bench.report import Measurement
from trackd.server.validation import MAX_ID_CHARS, MAX_NAME_CHARS, MAX_PROPERTY_KEYS

PROJECT_ID = "bench"


class Refused(ValueError):
    """An event the floor's checks refuse (never raised for the bench's bodies)."""


def body(run_id: str, batch: int, start: int = 0) -> bytes:
    """The body wrk sends (bench/post.lua): one event when ``batch`` is 0, else a batch."""
    def event(n: int) -> dict[str, Any]:
        return {"external_user_id": f"usr_{n % 10_000}", "name": "user_signed_up",
                "event_id": f"{run_id}-w0-{n}",
                "properties": {"plan": "trial", "source": "organic", "n": n}}
    if not batch:
        return orjson.dumps(event(start))
    return orjson.dumps({"events": [event(start + i) for i in range(batch)]})


def _document(event: Any, received_at: datetime) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise Refused("an event is an object")
    name = event.get("name")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        raise Refused("name")
    user = event.get("external_user_id") or None
    anonymous = event.get("anonymous_id") or None
    if user is None and anonymous is None:
        raise Refused("external_user_id or anonymous_id")
    event_id = event.get("event_id")
    for value in (user, anonymous, event_id):
        if value is not None and (not isinstance(value, str) or len(value) > MAX_ID_CHARS):
            raise Refused("ids are strings of at most MAX_ID_CHARS")
    properties = event.get("properties") or {}
    if not isinstance(properties, dict) or len(properties) > MAX_PROPERTY_KEYS:
        raise Refused("properties")
    return {"project_id": PROJECT_ID, "event_id": event_id, "name": name, "user_id": user,
            "anonymous_id": anonymous, "timestamp": received_at, "received_at": received_at,
            "properties": properties}


def ingest(raw: bytes) -> list[bytes]:
    """The floor's work for one request body: the BSON documents it would insert."""
    parsed = orjson.loads(raw)
    received_at = datetime.now(UTC)  # once per request, as trackd's clock is
    events = parsed.get("events", [parsed])
    return [bson.encode(_document(event, received_at)) for event in events]


def measure(key: str, label: str, *, batch: int, seconds: float, run_id: str) -> Measurement:
    """Run :func:`ingest` on the bench's body for ``seconds``; CPU is this process's own."""
    bodies = [body(run_id, batch, start=i * max(batch, 1)) for i in range(16)]
    events_per_op = max(batch, 1)
    latencies: list[float] = []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    deadline = wall_start + seconds
    ops = 0
    while True:
        began = time.perf_counter()
        if began >= deadline:
            break
        ingest(bodies[ops % len(bodies)])
        latencies.append(time.perf_counter() - began)
        ops += 1
    cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - wall_start
    latencies.sort()
    return Measurement(
        key=key, label=label, unit="req", concurrency=1, events_per_op=events_per_op,
        ops=ops, events=ops * events_per_op, errors=0, duration=wall,
        p50_ms=latencies[len(latencies) // 2] * 1000 if latencies else float("nan"),
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan"),
        server_cpu=cpu)
