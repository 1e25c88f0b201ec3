"""``bench/run scale``: trackd's ingest as 1 and 2 worker processes (``--workers``) and as
1 and 2 instances on one database, on this machine, with the ratios and what limited them.

Each configuration gets a fresh database on the same database server (the embedded one the
bench starts, or ``MONGODB_URI``) and the same loads, from wrk (C, cheap on the cores):

- ``w1``: ``trackd serve`` (one process, the baseline);
- ``w2``: ``trackd serve --workers 2`` (a supervisor and two workers sharing the ports);
- ``i2``: two ``trackd serve`` instances on their own ports, the load split between them
  (as a load balancer would), both on the one database.

For each: events/s, server CPU per event (every trackd process: supervisor and workers, or
both instances), and the cores each party used over the window: trackd, the database (when
the bench runs it), the load generator, and everything else on the machine (which says how
disturbed the run was). The ratios are w2 ÷ w1 and i2 ÷ w1. On two cores the database
takes about one, and the load generator some, so expect far below 2x; the "limited by" line
says which resource was saturated. Options are ``python -m bench``'s (``--duration``,
``--warmup``, ``--concurrency``, ``--batch``, ``--batch-concurrency``, ``--mongodb-uri``,
``--trackd-loads`` of rest.single and rest.batch, ``--wait-quiet``, ...).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import wrk
from bench.main import (
    Bench,
    check_proc,
    database,
    machine,
    parse_args,
    say,
    trackd_command,
    wait_quiet,
)
from bench.procs import Child, NotReady, wait_for_ports
from bench.report import Measurement, measurements_table

LOADS = ("rest.single", "rest.batch")


@dataclass(frozen=True)
class Config:
    tag: str
    label: str
    workers: int
    instances: int


CONFIGS = (
    Config("w1", "1 process", 1, 1),
    Config("w2", "--workers 2", 2, 1),
    Config("i2", "2 instances", 1, 2),
)


class ScaleBench(Bench):
    def start(self, name: str, db_name: str, workers: int) -> tuple[Child, int]:
        http_port = self._port(0)
        grpc_port = self._port(0, avoid={http_port})
        env = {"TRACKD_RATE_LIMIT_VIBEFOLLOW": "off", **os.environ,
               "MONGODB_URI": self.db.uri, "TRACKD_DATABASE": db_name,
               "TRACKD_WORKERS": str(workers), "TRACKD_LOG_FORMAT": "text"}
        server = Child(name, [*self.trackd_exe, "serve", "--mongodb-uri", self.db.uri,
                              "--database", db_name, "--host", "127.0.0.1",
                              "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
                       self.work, env=env)
        wait_for_ports(server, [grpc_port, http_port], timeout=90)
        deadline = time.monotonic() + 90
        while "trackd is serving" not in server.log_tail(100_000):  # every worker serving
            if time.monotonic() > deadline or not server.alive():
                raise NotReady(f"{name} did not serve; its log ends:\n{server.log_tail()}")
            time.sleep(0.1)
        return server, http_port

    def wrk_split(self, key: str, label: str, urls: Sequence[str], *, connections: int,
                  batch: int, token: str, server_pids: Sequence[int]) -> Measurement:
        """wrk against every URL at once, ``connections`` split between them."""
        self.begin(label)
        shares = [connections // len(urls) + (1 if i < connections % len(urls) else 0)
                  for i in range(len(urls))]

        def all_at_once(seconds: int, tag: str) -> list[wrk.WrkResult]:
            with ThreadPoolExecutor(len(urls)) as pool:
                runs = [pool.submit(wrk.run, url, connections=share, seconds=seconds,
                                    run_id=f"{self.run_id}-s{self.step}{tag}{i}",
                                    batch=batch, token=token)
                        for i, (url, share) in enumerate(zip(urls, shares, strict=True))]
                return [run.result() for run in runs]

        all_at_once(self.args.warmup, "w")
        before = self.sample(server_pids)
        results = all_at_once(self.args.duration, "m")
        after = self.sample(server_pids)
        events_per_op = batch or 1
        ops = sum(r.ops for r in results)
        m = Measurement(
            key=key, label=label, unit="req", concurrency=connections,
            events_per_op=events_per_op, ops=ops, events=ops * events_per_op,
            errors=sum(r.errors for r in results),
            duration=max(r.duration for r in results),
            # Across two wrk runs only bounds are known: the slower one's percentiles.
            p50_ms=max(r.p50_us for r in results) / 1000,
            p99_ms=max(r.p99_us for r in results) / 1000,
            loadgen_cpu=sum(r.loadgen_cpu for r in results))
        self.account(m, before, after)
        return self.finish(m)

    def scale(self) -> None:
        a = self.args
        for config in CONFIGS:
            db_name = f"bench_scale_{config.tag}_{self.run_id.replace('-', '_')}"
            token = self._create_key(db_name)
            servers: list[Child] = []
            try:
                ports = []
                for i in range(config.instances):
                    server, port = self.start(f"trackd-{config.tag}-{i}", db_name,
                                              config.workers)
                    servers.append(server)
                    ports.append(port)
                pids = [server.pid for server in servers]
                say(f"        {config.label}: trackd pid(s) {' '.join(map(str, pids))}, "
                    f"REST on {' '.join(f':{p}' for p in ports)}")
                for load in a.loads:
                    batch = a.batch if load == "rest.batch" else 0
                    path = "/api/v1/events/batch" if batch else "/api/v1/events"
                    what = f"batch of {a.batch}" if batch else "single event"
                    self.wrk_split(
                        f"scale.{config.tag}.{load}", f"{config.label}: REST {what}",
                        [f"http://127.0.0.1:{port}{path}" for port in ports],
                        connections=a.batch_concurrency if batch else a.concurrency,
                        batch=batch, token=token, server_pids=pids)
                    for server in servers:
                        if not server.alive():
                            raise RuntimeError(f"{server.name} died during {load}; its log "
                                               f"ends:\n{server.log_tail()}")
            finally:
                for server in servers:
                    status = server.stop(2 * a.duration + 30)
                    if status not in (0, None):
                        say(f"        note: {server.name} exited with status {status}")
            self._drop(db_name)


def cores(cpu: float | None, m: Measurement) -> float:
    return cpu / m.duration if cpu is not None and m.duration else math.nan


def limited_by(m: Measurement, cpus: int) -> str:
    """Which resource the window saturated, from the cores each party used."""
    parts = {"trackd": cores(m.server_cpu, m), "the database": cores(m.db_cpu, m),
             "the load generator": cores(m.loadgen_cpu, m)}
    other = m.other_cores
    busy = cores(m.machine_cpu, m)
    used = ", ".join(f"{name} {value:.2f}" for name, value in parts.items()
                     if not math.isnan(value))
    used += f", other processes {other:.2f}" if other is not None else ""
    if not math.isnan(busy) and busy >= 0.9 * cpus:
        return f"the machine's {cpus} cores (all busy: {used} cores)"
    if parts["the database"] >= 0.9:
        return f"the database, one core's worth ({used} cores)"
    return f"neither the cores nor the database alone: latency, batching ({used} cores)"


def report(bench: ScaleBench, cpus: int) -> list[dict[str, Any]]:
    found = {m.key: m for m in bench.measurements}
    rows = []
    say("\nRatios (and what limited each run):")
    for load in bench.args.loads:
        base = found.get(f"scale.w1.{load}")
        if base is None:
            continue
        if not base.events or not base.server_cpu:
            say(f"  {load}: no events completed in w1's window: no ratios (a longer "
                "--duration)")
            continue
        say(f"  {load}: w1 {base.events_per_s:,.0f} events/s, "
            f"{base.cpu_us_per_event(base.server_cpu):,.1f} µs CPU/event; "
            f"limited by {limited_by(base, cpus)}")
        for tag in ("w2", "i2"):
            m = found.get(f"scale.{tag}.{load}")
            if m is None:
                continue
            throughput = m.events_per_s / base.events_per_s
            cpu = m.cpu_us_per_event(m.server_cpu) / base.cpu_us_per_event(base.server_cpu)
            say(f"    {tag} ÷ w1: events/s {throughput:.2f}x, CPU per event {cpu:.2f}x; "
                f"{tag} limited by {limited_by(m, cpus)}")
            rows.append({"load": load, "config": tag, "events_per_s_ratio": throughput,
                         "cpu_per_event_ratio": cpu, "limited_by": limited_by(m, cpus)})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(["--only", "trackd", "--trackd-loads", ",".join(LOADS), *(argv or [])])
    unknown = sorted(set(args.loads) - set(LOADS))
    if unknown:
        print(f"bench scale: --trackd-loads takes {', '.join(LOADS)}", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="trackd-bench-scale-"))
    host = machine()
    cpus = os.cpu_count() or 1
    failed = True
    try:
        check_proc()
        if not wrk.available():
            raise NotReady("bench scale needs wrk (bench/run installs it)")
        args.results_dir.mkdir(parents=True, exist_ok=True)
        wait_quiet(args.wait_quiet)
        say(f"trackd scale bench {run_id}: {cpus} CPUs, {args.duration} s windows after "
            f"{args.warmup} s warm-up")
        with database(args, work) as db:
            bench = ScaleBench(args, work, db, run_id, "wrk", trackd_command())
            bench.steps = len(CONFIGS) * len(args.loads)
            bench.scale()
        say("\n" + measurements_table(bench.measurements))
        say("\nCPU is every trackd process's (supervisor and workers, or both instances); "
            "DB and load generator apart.")
        rows = report(bench, cpus)
        output: Path = args.results_dir / f"{stamp}-scale.json"
        output.write_text(json.dumps({
            "run_id": run_id, "machine": host,
            "settings": {"duration": args.duration, "warmup": args.warmup,
                         "concurrency": args.concurrency, "batch": args.batch,
                         "batch_concurrency": args.batch_concurrency},
            "measurements": {m.key: m.to_dict() for m in bench.measurements},
            "ratios": rows}, indent=2, ensure_ascii=False) + "\n")
        failed = False
    except NotReady as exc:
        print(f"bench: not ready: {exc}", file=sys.stderr)
        failed = False
        return 2
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"bench: failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if failed or args.keep_logs:
            print(f"bench: logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    say(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
