"""Open-loop latency: trackd and bare aiohttp at fixed arrival rates (``bench/run latency``).

A closed-loop load generator sends the next request when an answer comes back, so a slow
answer slows the sender and the latencies it hides are never measured (coordinated
omission). Here the load is open-loop: ``loadtest`` (npm, pinned in package.json) with
``requestsPerSecond``, driven by :file:`bench/open_loop.mjs`, sends each request on a
schedule, on a free or a new connection, whether or not earlier ones were answered, and
times it from when its timer fired: the intended send time, as wrk2 and vegeta measure,
as long as node keeps the schedule, which the driver checks (each window's schedule lag
is printed and stored). (autocannon's ``--overallRate``
was tried first and rejected: each connection sends its share of a second back to back,
then waits for the next second, and its correction assumes a 1 ms interval.)

The run, on one fresh embedded database (or ``MONGODB_URI``):

1. ``trackd serve``; for each load (REST single events at ``--concurrency`` connections,
   REST batches of ``--batch`` at ``--batch-concurrency``), a closed-loop wrk window
   (the main bench's) measures its throughput, then loadtest offers 25, 50, 75 and 90 %
   of it (``--percents``) for ``--duration`` seconds each;
2. the bare aiohttp server (:mod:`bench.bare_http`) at the same absolute rates.

It prints p50/p99/p99.9 and errors per point and writes
``bench/results/<stamp>-latency.json`` and ``<stamp>-latency.svg`` (the curve:
:mod:`bench.latency_svg`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import wrk
from bench.latency_svg import Point, render
from bench.main import RESULTS, Bench, database, machine, say, trackd_command
from bench.procs import (
    REPO,
    Child,
    NotReady,
    free_port,
    machine_busy_seconds,
    tree_cpu_seconds,
    wait_for_ports,
)

OPEN_LOOP = Path(__file__).with_name("open_loop.mjs")
LOADTEST = REPO / "node_modules" / "loadtest" / "package.json"
LOADS = {"rest.single": "REST single event", "rest.batch": "REST batch"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10,
                        help="seconds per rate, and of the closed-loop window (default 10)")
    parser.add_argument("--percents", default="25,50,75,90",
                        help="offered loads, %% of trackd's closed-loop throughput")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="connections for single events (default 64)")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batch-concurrency", type=int, default=4,
                        help="connections of the closed-loop batch window (default 4)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds of no load before each open-loop window (default 2)")
    parser.add_argument("--loads", default=",".join(LOADS))
    parser.add_argument("--mongodb-uri", default=os.environ.get("MONGODB_URI"))
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.percent_list = [float(p) for p in args.percents.split(",") if p.strip()]
    args.load_list = [x.strip() for x in args.loads.split(",") if x.strip()]
    if set(args.load_list) - set(LOADS):
        parser.error(f"--loads: of {','.join(LOADS)}")
    return args


def request_body(batch: int, prefix: str) -> str:
    """The bench's event (bench/post.lua); the driver puts each request's number for
    ``[<id>]``, so every event id is unique (``prefix`` is unique to the window)."""
    def event(i: int) -> dict[str, Any]:
        return {"external_user_id": f"usr_{i}", "name": "user_signed_up",
                "event_id": f"{prefix}-[<id>]-{i}",
                "properties": {"plan": "trial", "source": "organic", "n": i}}
    if not batch:
        return orjson.dumps(event(0)).decode()
    return orjson.dumps({"events": [event(i) for i in range(batch)]}).decode()


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile of sorted ``values`` (NaN when there are none)."""
    if not values:
        return math.nan
    return float(values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))])


def open_loop(url: str, *, rate: float, seconds: int, body: str, token: str,
              server_pid: int) -> dict[str, Any]:
    """One open-loop window at ``rate`` requests/s (bench/open_loop.mjs driving loadtest)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    config = {"url": url, "rate": rate, "seconds": seconds, "body": body, "headers": headers}
    before, began = cpu_sample(server_pid), time.monotonic()
    done = subprocess.run(["node", str(OPEN_LOOP), json.dumps(config)], capture_output=True,
                          text=True, check=False, timeout=seconds + 120, cwd=REPO)
    after, elapsed = cpu_sample(server_pid), time.monotonic() - began
    line = next((ln for ln in reversed(done.stdout.splitlines()) if ln.startswith("{")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"open_loop.mjs exited {done.returncode}: "
                           f"{done.stderr.strip()[-500:]}")
    raw = json.loads(line)
    latencies = sorted(float(v) for v in raw["latencies_ms"])
    answered = len(latencies)
    return {"offered_per_s": round(rate, 2), "sent": raw["started"], "answered_2xx": answered,
            "answered_per_s": answered / seconds,
            "unanswered": max(0, raw["started"] - answered - raw["errors"]),
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "p99_9_ms": percentile(latencies, 99.9),
            "max_ms": latencies[-1] if latencies else math.nan,
            "errors": raw["errors"], "first_error": raw["first_error"],
            "connections": raw["clients"],
            # How late requests left against the schedule: latency counts from the timer,
            # so this is what it misses of the time from the intended send.
            "schedule_lag_p99_ms": percentile(sorted(raw["schedule_lag_ms"]), 99),
            "schedule_lag_max_ms": max(raw["schedule_lag_ms"], default=math.nan),
            # Cores over the generator's whole run (node's start-up and the window): the
            # server's process tree, the generator, and everything else on the machine
            # (the database among them).
            "server_cores": (after[0] - before[0]) / elapsed,
            "loadgen_cores": (after[1] - before[1]) / elapsed,
            "other_cores": ((after[2] - before[2]) - (after[0] - before[0])
                            - (after[1] - before[1])) / elapsed}


def cpu_sample(server_pid: int) -> tuple[float, float, float]:
    """CPU seconds so far: the server's tree, this process's children, the whole machine."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (tree_cpu_seconds([server_pid]), children.ru_utime + children.ru_stime,
            machine_busy_seconds())


def sweep(server: str, pid: int, base: str, token: str, rates: dict[str, float],
          args: argparse.Namespace, run_id: str, rows: list[dict[str, Any]]) -> None:
    """Each load of ``rates`` at each percentage of its rate, one window each."""
    for load in rates:
        url, batch = (base, 0) if load == "rest.single" else (f"{base}/batch", args.batch)
        for percent in args.percent_list:
            rate = rates[load] * percent / 100
            # The previous window's requests (and the writes behind them) drain first.
            time.sleep(args.settle)
            say(f"  {server} {LOADS[load]}: {percent:g}% = {rate:,.1f} req/s for "
                f"{args.duration} s ...")
            body = request_body(batch, f"{run_id}-{server}-{load}-{percent:g}")
            row = {"server": server, "load": load, "percent": percent,
                   **open_loop(url, rate=rate, seconds=args.duration, body=body, token=token,
                              server_pid=pid)}
            say(f"      p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, p99.9 "
                f"{row['p99_9_ms']:.1f} ms; {row['sent']} sent, {row['answered_2xx']} answered "
                f"2xx, {row['unanswered']} unanswered at the end, {row['errors']} errors; "
                f"{row['connections']} connections; schedule lag p99 "
                f"{row['schedule_lag_p99_ms']:.1f} ms, max {row['schedule_lag_max_ms']:.1f} ms; "
                f"cores: server {row['server_cores']:.2f}, "
                f"generator {row['loadgen_cores']:.2f}, others {row['other_cores']:.2f}")
            rows.append(row)


def run(args: argparse.Namespace, work: Path, run_id: str) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    rates: dict[str, float] = {}
    with database(args, work) as db:
        bench = Bench(args, work, db, run_id, "wrk", trackd_command())
        name = f"bench_latency_{run_id.replace('-', '_')}"
        token = bench._create_key(name)
        http_port, grpc_port = free_port(), free_port()
        env = {"TRACKD_RATE_LIMIT_VIBEFOLLOW": "off", **os.environ,
               "MONGODB_URI": db.uri, "TRACKD_DATABASE": name}
        server = Child("trackd", [*bench.trackd_exe, "serve", "--mongodb-uri", db.uri,
                                  "--database", name, "--host", "127.0.0.1", "--http-port",
                                  str(http_port), "--grpc-port", str(grpc_port)], work, env=env)
        try:
            wait_for_ports(server, [grpc_port, http_port], timeout=60)
            base = f"http://127.0.0.1:{http_port}/api/v1/events"
            for load in args.load_list:
                batch = 0 if load == "rest.single" else args.batch
                result = wrk.run(base + ("/batch" if batch else ""),
                                 connections=args.batch_concurrency if batch
                                 else args.concurrency, seconds=args.duration,
                                 run_id=f"{run_id}-closed-{load}", batch=batch, token=token)
                rates[load] = result.ops / result.duration
                say(f"trackd {LOADS[load]}, closed loop: {rates[load]:,.1f} req/s "
                    f"(p50 {result.p50_us / 1000:.1f} ms, {result.errors} errors)")
                # Each load's sweep right after its own closed-loop window: trackd warm
                # for that load, no other load's writes still queued.
                sweep("trackd", server.pid, base, token, {load: rates[load]}, args, run_id,
                      rows)
        finally:
            server.stop(30)
        bench._drop(name)
    port = free_port()
    bare = Child("bare-http", [sys.executable, "-m", "bench.bare_http", "--port", str(port)],
                 work)
    try:
        wait_for_ports(bare, [port])
        sweep("bare", bare.pid, f"http://127.0.0.1:{port}/api/v1/events", "", rates, args,
              run_id, rows)
    finally:
        bare.stop()
    return {"closed_loop_req_per_s": rates, "points": rows}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not LOADTEST.exists() or shutil.which("node") is None:
        print("bench latency: not ready: needs node and node_modules/loadtest (npm ci)",
              file=sys.stderr)
        return 2
    if not wrk.available():
        print("bench latency: not ready: wrk is not installed (bench/run installs it)",
              file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="trackd-latency-"))
    host = machine()
    try:
        result = run(args, work, run_id)
    except NotReady as exc:
        print(f"bench latency: not ready: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"bench latency: failed: {exc} (logs in {work})", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    say("\nserver  load               offered   req/s  answered/s   p50 ms   p99 ms  p99.9 ms"
        "  errors  conns  server cores")
    for r in result["points"]:
        say(f"{r['server']:<7} {LOADS[r['load']]:<18} {r['percent']:>6g}% "
            f"{r['offered_per_s']:>7,.1f} {r['answered_per_s']:>11,.1f} {r['p50_ms']:>8.1f} "
            f"{r['p99_ms']:>8.1f} {r['p99_9_ms']:>9.1f} {r['errors']:>7} "
            f"{r['connections']:>6} {r['server_cores']:>13.2f}")
    output = args.results_dir / f"{stamp}-latency.json"
    output.write_text(json.dumps({"run_id": run_id, "machine": host, "settings": {
        "duration": args.duration, "percents": args.percent_list, "batch": args.batch,
        "generator": "loadtest requestsPerSecond (bench/open_loop.mjs)"},
        **result}, indent=2) + "\n")
    points = [Point(r["server"], r["load"], r["percent"], r["p50_ms"], r["p99_ms"],
                    r["p99_9_ms"]) for r in result["points"]]
    titles = {load: (f"REST batch of {args.batch}" if load == "rest.batch"
                     else LOADS[load]) for load in args.load_list}
    rates = ", ".join(f"{LOADS[k]} {v:,.1f} req/s" for k, v in result["closed_loop_req_per_s"]
                      .items())
    picture = output.with_suffix(".svg")
    picture.write_text(render(points, titles, f"100% = trackd closed loop: {rates}; "
                                              f"{os.cpu_count()} CPUs; run {run_id}"))
    say(f"\nresults written to {output} and {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
