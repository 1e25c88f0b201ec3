"""Measurements, the ratios and targets from the issue, and the printed tables.

Every number here comes from one measurement window: operations and events that
completed inside it, latency of those operations, and the CPU seconds each process used
inside it (``/proc/<pid>/stat`` deltas; the load generator's own CPU is kept apart).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Measurement:
    """One phase: what the load generator saw and what the processes spent."""

    key: str                      # e.g. "trackd.rest.single"
    label: str                    # e.g. "trackd REST single event"
    unit: str                     # what one op is: "req", "RPC", "insert", ...
    concurrency: int
    events_per_op: int
    ops: int
    events: int
    errors: int
    duration: float               # seconds
    p50_ms: float
    p99_ms: float
    server_cpu: float | None = None   # CPU seconds of the process under test
    db_cpu: float | None = None       # CPU seconds of the database (embedded only)
    loadgen_cpu: float | None = None  # CPU seconds of the load generator(s)
    machine_cpu: float | None = None  # CPU seconds of every process on the machine
    db_inserts: int | None = None     # the database's insert counter over the window
    notes: list[str] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.duration if self.duration else math.nan

    @property
    def events_per_s(self) -> float:
        return self.events / self.duration if self.duration else math.nan

    def cpu_us_per_event(self, cpu: float | None) -> float:
        return cpu / self.events * 1e6 if cpu is not None and self.events else math.nan

    def cpu_us_per_op(self, cpu: float | None) -> float:
        return cpu / self.ops * 1e6 if cpu is not None and self.ops else math.nan

    @property
    def other_cores(self) -> float | None:
        """Cores used by processes that are none of server, database and load generator."""
        if self.machine_cpu is None or not self.duration:
            return None
        known = sum(c for c in (self.server_cpu, self.db_cpu, self.loadgen_cpu) if c)
        return max(0.0, self.machine_cpu - known) / self.duration

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            ops_per_s=self.ops_per_s,
            events_per_s=self.events_per_s,
            server_cpu_us_per_op=self.cpu_us_per_op(self.server_cpu),
            server_cpu_us_per_event=self.cpu_us_per_event(self.server_cpu),
            db_cpu_us_per_event=self.cpu_us_per_event(self.db_cpu),
            server_cores=(self.server_cpu / self.duration
                          if self.server_cpu is not None and self.duration else None),
            db_cores=(self.db_cpu / self.duration
                      if self.db_cpu is not None and self.duration else None),
            loadgen_cores=(self.loadgen_cpu / self.duration
                           if self.loadgen_cpu is not None and self.duration else None),
            other_cores=self.other_cores,
        )
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in data.items()}


@dataclass
class Ratio:
    name: str
    value: float
    target: str          # e.g. ">= 0.90"
    met: bool | None     # None: informational, no target
    how: str             # numerator and denominator, with their values

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if math.isnan(self.value):
            data["value"] = None
        return data


def _check(value: float, target: str) -> bool | None:
    if not target or math.isnan(value):
        return None
    op, _, bound = target.partition(" ")
    return value >= float(bound) if op == ">=" else value <= float(bound)


def ratios(m: dict[str, Measurement], batch: int) -> list[Ratio]:
    """The issue's ratios (with targets), plus informational variants, where measured."""
    out: list[Ratio] = []

    def add(name: str, target: str, num_key: str, den_key: str,
            num: Callable[[Measurement], float], den: Callable[[Measurement], float],
            num_text: str, den_text: str) -> None:
        if num_key not in m or den_key not in m:
            return
        a, b = num(m[num_key]), den(m[den_key])
        value = a / b if b else math.nan
        out.append(Ratio(name, value, target, _check(value, target),
                         f"{num_text} {a:,.1f} / {den_text} {b:,.1f}"))

    def events_s(x: Measurement) -> float:
        return x.events_per_s

    def ops_s(x: Measurement) -> float:
        return x.ops_per_s

    def server_us_event(x: Measurement) -> float:
        return x.cpu_us_per_event(x.server_cpu)

    def server_us_op(x: Measurement) -> float:
        return x.cpu_us_per_op(x.server_cpu)

    # The database's best insert_many rate, whichever number of writers gave it: a batch
    # path that only wins by running more writers than the baseline did is not measured
    # against a straw man.
    many = [k for k in m if k.startswith("raw.insert_many.")]
    if many:
        best = max(many, key=lambda k: m[k].events_per_s)
        writers = m[best].concurrency
        for key, what in (("trackd.rest.batch", "REST batch"), ("trackd.grpc.batch",
                                                                 "gRPC BatchTrack")):
            add(f"{what} events/s ÷ best raw insert_many({batch}) docs/s "
                f"({writers} in flight)", ">= 0.90", key, best, events_s, events_s,
                "events/s", "docs/s")
    add("REST single-event req/s ÷ raw sequential insert_one/s", ">= 4",
        "trackd.rest.single", "raw.insert_one.c1", ops_s, ops_s, "req/s", "inserts/s")
    add("REST single-event req/s ÷ raw insert_one/s at 64 in flight", "",
        "trackd.rest.single", "raw.insert_one.c64", ops_s, ops_s, "req/s", "inserts/s")
    # Issue 23's targets (issue 14's were <= 6, <= 2, <= 1.3, <= 20 µs and <= 25 µs).
    add("trackd CPU per REST single event ÷ bare aiohttp CPU per request", "<= 5",
        "trackd.rest.single", "bare.http", server_us_event, server_us_op, "µs", "µs")
    add("trackd CPU per gRPC TrackEvent ÷ no-op grpc.aio RPC CPU per call", "<= 1.5",
        "trackd.grpc.track", "bare.grpc", server_us_op, server_us_op, "µs", "µs")
    # The same against the bare servers paced to trackd's latency, so at its request rate.
    add("trackd CPU per REST single event ÷ bare aiohttp's at trackd's latency", "",
        "trackd.rest.single", "bare.http.paced", server_us_event, server_us_op, "µs", "µs")
    add("trackd CPU per gRPC TrackEvent ÷ no-op RPC's at trackd's latency", "",
        "trackd.grpc.track", "bare.grpc.paced", server_us_op, server_us_op, "µs", "µs")
    # REST batches at most 1.25x gRPC BatchTrack's CPU per event (properties as
    # properties_json, as the gateway sends them), at most 15 µs; BatchTrack at most 12.
    add("trackd CPU per event, REST batch ÷ gRPC BatchTrack", "<= 1.25",
        "trackd.rest.batch", "trackd.grpc.batch", server_us_event, server_us_event, "µs", "µs")
    add("trackd CPU per event, REST batch ÷ gRPC BatchTrack with Struct properties", "",
        "trackd.rest.batch", "trackd.grpc.batch.struct", server_us_event, server_us_event,
        "µs", "µs")
    # Issue 23: each trackd row against the Python floor of the same work (bench.floor).
    for key, floor_key, what in (("trackd.rest.batch", "floor.batch", "REST batch"),
                                 ("trackd.grpc.batch", "floor.batch", "gRPC BatchTrack"),
                                 ("trackd.rest.single", "floor.single", "REST single event")):
        add(f"trackd CPU per event, {what} ÷ the Python floor's", "", key, floor_key,
            server_us_event, server_us_event, "µs", "µs")
    for key, what, target in (("trackd.rest.batch", "REST", "<= 15"),
                              ("trackd.grpc.batch", "gRPC", "<= 12"),
                              ("trackd.grpc.batch.struct", "gRPC (Struct)", "")):
        if key in m:
            value = server_us_event(m[key])
            out.append(Ratio(f"trackd CPU µs per event, {what} {batch}-event batch", value,
                             target, _check(value, target),
                             f"{m[key].server_cpu or 0:.2f} s CPU / {m[key].events:,} events"))
    return out


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:,.{digits}f}"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def measurements_table(measurements: list[Measurement]) -> str:
    header = ["measurement", "in flight", "ops/s", "events/s", "p50 ms", "p99 ms",
              "CPU µs/op", "CPU µs/event", "server cores", "DB µs/event", "errors"]
    rows = []
    for m in measurements:
        rows.append([
            m.label, str(m.concurrency), _fmt(m.ops_per_s), _fmt(m.events_per_s),
            _fmt(m.p50_ms, 2), _fmt(m.p99_ms, 2),
            _fmt(m.cpu_us_per_op(m.server_cpu), 1), _fmt(m.cpu_us_per_event(m.server_cpu), 1),
            _fmt(m.server_cpu / m.duration if m.server_cpu is not None else None, 2),
            _fmt(m.cpu_us_per_event(m.db_cpu), 1), str(m.errors),
        ])
    return table(rows, header)


def ratios_table(items: list[Ratio]) -> str:
    header = ["ratio", "value", "target", "result", "from"]
    rows = []
    for r in items:
        result = "-" if r.met is None else ("met" if r.met else "MISSED")
        rows.append([r.name, _fmt(r.value, 2), r.target or "(info)", result, r.how])
    return table(rows, header)
