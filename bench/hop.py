"""``bench/run hop``: REST single events through each gateway-to-server hop design, side by
side in one run (issue 14).

Rows, each its own server process on the same database, loaded by wrk with the same
VibeFollow ``POST /api/v1/events`` at ``--concurrency`` connections:

- ``bare aiohttp 202``: :mod:`bench.bare_http`, the floor of an aiohttp handler;
- ``shipped``: ``trackd serve`` as it is (gateway + server in one process; single events
  coalesced into ``TrackEvents`` calls, trackd/gateway/hop.py);
- ``unary-tcp`` (today's design, before issue 14: the ratios' reference), ``unary-unix``,
  ``stream``, ``coalesce``: :mod:`bench.hop_serve`, the real gateway and the real
  TrackingService in one process with the hop swapped (see there);
- ``bare aiohttp 202, answering after N ms``: the bare server again, each answer
  delayed by shipped's median latency, so at shipped's request rate (bench.bare_http).

Ratios: each design's CPU per request ÷ bare aiohttp's (target <= 5), shipped's ÷ the
paced bare server's (info), and each design's req/s ÷ today's (``unary-tcp``; target
>= 1.5). Then :mod:`bench.hop_batch`: a batch's
properties as Struct against JSON bytes, CPU per event of the gateway's and the
server's half. Options are ``python -m bench``'s (``--duration``, ``--warmup``,
``--concurrency``, ``--batch``, ``--mongodb-uri``, ...) plus ``--designs``,
``--linger-ms`` and ``--profile-designs shipped,unary-tcp`` (py-spy on those servers
after their window).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import hop_batch
from bench.hop_serve import DESIGNS
from bench.main import (
    PACED_KEY,
    PACED_LABEL,
    Bench,
    check_proc,
    choose_http_client,
    database,
    machine,
    parse_args,
    say,
    trackd_command,
)
from bench.procs import Child, NotReady, wait_for_ports
from bench.report import Measurement, Ratio, measurements_table, ratios_table

BARE = "bare.http"
TODAY = "hop.unary-tcp"     # the design before issue 14
SHIPPED = "hop.shipped"     # trackd serve as it is now
PACED = PACED_KEY.format(BARE)  # the bare server answering after shipped's median latency


def _own_options(argv: Sequence[str]) -> tuple[list[str], list[str], float, list[str]]:
    """``--designs a,b``, ``--linger-ms N`` and ``--profile-designs a,b`` taken out; the
    rest is python -m bench's."""
    rest, designs, linger, profiled = [], list(DESIGNS), 0.0, []
    items = iter(argv)
    for item in items:
        if item == "--designs":
            designs = [d.strip() for d in next(items).split(",") if d.strip()]
        elif item == "--linger-ms":
            linger = float(next(items))
        elif item == "--profile-designs":
            profiled = [d.strip() for d in next(items).split(",") if d.strip()]
        else:
            rest.append(item)
    if "unary-tcp" not in designs:
        designs.insert(0, "unary-tcp")  # today's design: every ratio's reference
    unknown = sorted(set(designs) - set(DESIGNS)) + sorted(
        set(profiled) - {"shipped", *designs})
    if unknown:
        raise SystemExit(f"--designs / --profile-designs: unknown or unmeasured design(s) "
                         f"{', '.join(unknown)}; of shipped,{','.join(DESIGNS)}")
    return rest, designs, linger, profiled


class HopBench(Bench):
    profiled: Sequence[str] = ()

    def rest_single(self, key: str, label: str, child: Child, http_port: int,
                    token: str) -> Measurement:
        url = f"http://127.0.0.1:{http_port}/api/v1/events"
        try:
            wait_for_ports(child, [http_port], timeout=60)
            m = self.http_load(key, label, url, connections=self.args.concurrency, batch=0,
                               token=token, server_pids=[child.pid])
            if not child.alive():
                raise RuntimeError(f"{child.name} died; its log ends:\n{child.log_tail()}")
            if key.removeprefix("hop.") in self.profiled:
                self._profile(key, child.pid, {key: lambda: self.http_load(
                    key, label, url, connections=self.args.concurrency, batch=0,
                    token=token, server_pids=[child.pid])})
            return m
        finally:
            child.stop(self.args.duration + 30)

    def designs(self, designs: Sequence[str], linger_ms: float) -> None:
        database = f"bench_hop_{self.run_id.replace('-', '_')}"
        token = self._create_key(database)
        env = {"TRACKD_RATE_LIMIT_VIBEFOLLOW": "off", **os.environ,
               "MONGODB_URI": self.db.uri, "TRACKD_DATABASE": database}
        port = self._port(0)
        self.rest_single(SHIPPED, "shipped: trackd serve, coalescing into TrackEvents", Child(
            "trackd", [*self.trackd_exe, "serve", "--mongodb-uri", self.db.uri,
                       "--database", database, "--host", "127.0.0.1", "--http-port", str(port),
                       "--grpc-port", str(self._port(0, avoid={port}))],
            self.work, env=env), port, token)
        for design in designs:
            port = self._port(0)
            label = "today: unary TrackEvent over TCP" if design == "unary-tcp" \
                else f"{design}: REST single event"
            self.rest_single(f"hop.{design}", label, Child(
                f"hop-{design}", [sys.executable, "-m", "bench.hop_serve", "--design", design,
                                  "--http-port", str(port), "--mongodb-uri", self.db.uri,
                                  "--database", database, "--linger-ms", str(linger_ms)],
                self.work, env=env), port, token)
        self._drop(database)


def hop_ratios(found: dict[str, Measurement], designs: Sequence[str]) -> list[Ratio]:
    bare, today = found[BARE], found[TODAY]
    bare_cpu = bare.cpu_us_per_event(bare.server_cpu)
    items = []
    keys = [SHIPPED, *(f"hop.{d}" for d in designs)]
    for key in keys:
        m = found[key]
        cpu = m.cpu_us_per_event(m.server_cpu)
        value = cpu / bare_cpu if bare_cpu else math.nan
        items.append(Ratio(f"{m.label.split(':')[0]}: CPU per request ÷ bare aiohttp", value,
                           "<= 5", value <= 5 if not math.isnan(value) else None,
                           f"{cpu:,.1f} µs / {bare_cpu:,.1f} µs"))
    if PACED in found:
        paced = found[PACED]
        paced_cpu = paced.cpu_us_per_event(paced.server_cpu)
        cpu = found[SHIPPED].cpu_us_per_event(found[SHIPPED].server_cpu)
        value = cpu / paced_cpu if paced_cpu else math.nan
        items.append(Ratio("shipped: CPU per request ÷ bare aiohttp's at shipped's latency",
                           value, "", None, f"{cpu:,.1f} µs / {paced_cpu:,.1f} µs"))
    for key in keys:
        if key == TODAY:
            continue
        m = found[key]
        value = m.ops_per_s / today.ops_per_s if today.ops_per_s else math.nan
        items.append(Ratio(f"{m.label.split(':')[0]}: req/s ÷ today's", value, ">= 1.5",
                           value >= 1.5 if not math.isnan(value) else None,
                           f"{m.ops_per_s:,.0f} / {today.ops_per_s:,.0f}"))
    return items


def main(argv: Sequence[str] | None = None) -> int:
    rest, designs, linger_ms, profiled = _own_options(list(sys.argv[1:] if argv is None else argv))
    args = parse_args(rest)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="trackd-bench-hop-"))
    host = machine()
    failed = True
    try:
        check_proc()
        http_client = choose_http_client(args.http_client)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        say(f"trackd hop bench {run_id}: {args.duration} s windows after {args.warmup} s "
            f"warm-up, {args.concurrency} connections, designs {', '.join(designs)}")
        with database(args, work) as db:
            bench = HopBench(args, work, db, run_id, http_client, trackd_command())
            bench.profiled = profiled
            bench.steps = 3 + len(designs) + len(profiled)
            started = time.monotonic()
            port = bench._port(args.bare_http_port)
            bench.rest_single(BARE, "bare aiohttp 202", Child(
                "bare-http", [sys.executable, "-m", "bench.bare_http", "--port", str(port)],
                work), port, "")
            bench.designs(designs, linger_ms)
            delay = next(m.p50_ms for m in bench.measurements if m.key == SHIPPED)
            port = bench._port(args.bare_http_port)
            bench.rest_single(PACED, PACED_LABEL.format("bare aiohttp 202", delay), Child(
                "bare-http", [sys.executable, "-m", "bench.bare_http", "--port", str(port),
                              "--delay-ms", str(delay)], work), port, "")
            elapsed = time.monotonic() - started
        say("        batch properties across the hop: Struct against JSON bytes, in process")
        batch_encoding = hop_batch.run(args.batch)
        found = {m.key: m for m in bench.measurements}
        items = hop_ratios(found, designs)
        say("\n" + measurements_table(bench.measurements))
        say("\n" + ratios_table(items))
        say("\n" + hop_batch.table(batch_encoding))
        output = args.results_dir / f"{stamp}-hop.json"
        output.write_text(json.dumps({
            "run_id": run_id, "started_at": stamp, "elapsed_seconds": round(elapsed, 1),
            "machine": host,
            "settings": {"duration": args.duration, "warmup": args.warmup,
                         "concurrency": args.concurrency, "designs": designs,
                         "linger_ms": linger_ms},
            "measurements": {m.key: m.to_dict() for m in bench.measurements},
            "ratios": [r.to_dict() for r in items],
            "profiles": bench.profiles,
            "batch_encoding_us_per_event": batch_encoding,
        }, indent=2, ensure_ascii=False) + "\n")
        failed = False
    except NotReady as exc:
        print(f"bench: not ready: {exc}", file=sys.stderr)
        failed = False
        return 2
    except RuntimeError as exc:
        print(f"bench: failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if failed or args.keep_logs:
            print(f"bench: logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    say(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
