"""The benchmark run: baselines, trackd, ratios, a table and a JSON file, in one command.

``python -m bench`` (or ``bench/run``, which installs what is missing first) runs, each
measurement in its own window, every load generator in its own process:

1. raw driver baselines on the database: ``insert_one`` with 1 and 64 writers,
   ``insert_many(500)`` with 1 and ``--batch-concurrency`` writers (:mod:`bench.db_load`);
2. a bare aiohttp server answering 202 (:mod:`bench.bare_http`, load from wrk) and a
   no-op grpc.aio server (:mod:`bench.bare_grpc`, load from :mod:`bench.grpc_load`);
3. ``trackd serve`` as a subprocess on the same database: REST single events, REST
   batches, gRPC ``TrackEvent``, gRPC ``BatchTrack`` (properties as ``properties_json``,
   and as a Struct);
4. optionally (``--profile``) py-spy on trackd under one of those loads.

CPU per event is the ``/proc/<pid>/stat`` utime+stime delta of the server's process tree
over the window, divided by the events acknowledged in that window. The database and the
load generator are separate processes and are counted apart. It refuses to start (exit
status 2) when a port it was told to use is taken or the database does not answer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from bench import floor as python_floor
from bench import profiling, wrk
from bench.loadgen import LoadResult, merge, percentile
from bench.procs import (
    REPO,
    Child,
    NotReady,
    child_env,
    free_port,
    machine_busy_seconds,
    port_is_free,
    tree_cpu_seconds,
    wait_for_ports,
)
from bench.report import Measurement, measurements_table, ratios, ratios_table
from trackd.storage.embedded import EmbeddedDatabase, EmbeddedUnavailable, is_installed

GROUPS = ("raw", "bare", "trackd", "paced", "floor")
# The bare servers answering after trackd's median latency (Bench.paced).
PACED_KEY = "{}.paced"
PACED_LABEL = "{}, answering after {:.0f} ms"
TRACKD_PHASES = ("rest.single", "rest.batch", "grpc.track", "grpc.batch",
                 "grpc.batch.struct")
RESULTS = REPO / "bench" / "results"
# Time a Python load generator gets to import and connect before its warm-up starts.
STARTUP_SECONDS = 2.0
# More than this many cores used by processes outside the benchmark: warn.
BUSY_CORES = 0.15


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=8,
                        help="seconds each measurement window lasts (default 8)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of load before each window (default 2)")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="requests in flight for single-event loads (default 64)")
    parser.add_argument("--batch", type=int, default=500, help="events per batch (default 500)")
    parser.add_argument("--batch-concurrency", type=int, default=4,
                        help="batches in flight, for trackd and the insert_many baseline "
                             "(default 4)")
    parser.add_argument("--mongodb-uri", default=os.environ.get("MONGODB_URI"),
                        help="database to measure (env MONGODB_URI); default: a fresh "
                             "embedded database in a temporary directory")
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"comma-separated groups to run, of {','.join(GROUPS)} (paced: the "
             f"bare servers answering after trackd's median latency)")
    parser.add_argument("--trackd-loads", default=",".join(TRACKD_PHASES),
                        help=f"comma-separated trackd loads to measure, of "
                             f"{','.join(TRACKD_PHASES)} (default: all)")
    parser.add_argument("--http-client", choices=("auto", "wrk", "aiohttp"), default="auto",
                        help="HTTP load generator: wrk, or the aiohttp fallback "
                             "(default: wrk when installed)")
    parser.add_argument("--http-procs", type=int, default=2,
                        help="processes for the aiohttp fallback load generator (default 2)")
    parser.add_argument("--grpc-procs", type=int, default=1,
                        help="processes for the gRPC load generator (default 1)")
    parser.add_argument("--profile", default="",
                        help=f"comma-separated trackd loads to profile with py-spy after "
                             f"measuring, of {','.join(TRACKD_PHASES)}")
    parser.add_argument("--profile-seconds", type=int, default=10)
    parser.add_argument("--profile-native", action="store_true",
                        help="py-spy --native: include C frames (grpc core, bson, ...)")
    for name in ("trackd-http", "trackd-grpc", "bare-http", "bare-grpc"):
        parser.add_argument(f"--{name}-port", type=int, default=0,
                            help="0 (default): a free port")
    parser.add_argument("--wait-quiet", type=int, default=0, metavar="SECONDS",
                        help="wait up to SECONDS for other processes to leave the CPUs idle "
                             "before starting (default 0: only warn)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the servers' logs (they are kept anyway on failure)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(args.groups) - set(GROUPS))
    if unknown:
        parser.error(f"--only: unknown group(s) {', '.join(unknown)}")
    args.loads = [p.strip() for p in args.trackd_loads.split(",") if p.strip()]
    unknown = sorted(set(args.loads) - set(TRACKD_PHASES))
    if unknown:
        parser.error(f"--trackd-loads: unknown load(s) {', '.join(unknown)}")
    args.profiles = [p.strip() for p in args.profile.split(",") if p.strip()]
    unknown = sorted(set(args.profiles) - set(TRACKD_PHASES))
    if unknown:
        parser.error(f"--profile: unknown load(s) {', '.join(unknown)}")
    if args.duration < 1 or args.warmup < 1:
        parser.error("--duration and --warmup are at least 1 second")
    return args


def say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class Sample:
    """CPU seconds (and the database's insert counter) at one instant."""

    server: float | None
    db: float | None
    machine: float
    inserts: int | None


@dataclass
class Database:
    uri: str
    embedded: EmbeddedDatabase | None
    pid: int | None  # known for the embedded database: its CPU is reported apart

    def insert_count(self) -> int | None:
        """serverStatus opcounters.insert (SecantusDB: insert commands; MongoDB: documents)."""
        client: MongoClient[dict[str, Any]] = MongoClient(self.uri, serverSelectionTimeoutMS=2000)
        try:
            status = client.admin.command("serverStatus")
            return int(status["opcounters"]["insert"])
        except (PyMongoError, KeyError, TypeError, ValueError):
            return None
        finally:
            client.close()


def ping(uri: str, timeout_ms: int = 3000) -> str | None:
    """None when ``uri`` answers ping; else why not."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return None
    except PyMongoError as exc:
        return str(exc).split(", Timeout:")[0].split(" (configured timeouts")[0][:300]
    finally:
        client.close()


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path                         # logs and the embedded database's files
    db: Database
    run_id: str
    http_client: str
    trackd_exe: list[str]
    measurements: list[Measurement] = field(default_factory=list)
    profiles: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    steps: int = 0

    # -- phases ---------------------------------------------------------------------------

    def begin(self, label: str) -> None:
        self.step += 1
        say(f"[{self.step:2d}/{self.steps}] {label} ... "
            f"({self.args.warmup} s warm-up + {self.args.duration} s)")

    def finish(self, m: Measurement) -> Measurement:
        cpu = m.cpu_us_per_event(m.server_cpu)
        parts = [f"{m.ops_per_s:,.0f} {m.unit}/s"]
        if m.events_per_op > 1:
            parts.append(f"{m.events_per_s:,.0f} events/s")
        parts.append(f"p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms")
        if not math.isnan(cpu):
            parts.append(f"server {cpu:,.1f} µs CPU/event")
        if m.db_cpu is not None and m.events:
            parts.append(f"DB {m.cpu_us_per_event(m.db_cpu):,.1f} µs/event")
        if m.errors:
            parts.append(f"{m.errors} ERRORS")
        say("        " + "; ".join(parts))
        for note in m.notes:
            say(f"        note: {note}")
        self.measurements.append(m)
        return m

    def db_pids(self) -> list[int]:
        return [self.db.pid] if self.db.pid is not None else []

    def sample(self, server_pids: Sequence[int], *, with_db: bool = True) -> Sample:
        """CPU times now; ``with_db`` False for a phase that does not touch the database."""
        db = with_db and self.db.pid is not None
        return Sample(server=tree_cpu_seconds(server_pids) if server_pids else None,
                      db=tree_cpu_seconds(self.db_pids()) if db else None,
                      machine=machine_busy_seconds(),
                      inserts=self.db.insert_count() if with_db else None)

    @staticmethod
    def account(m: Measurement, before: Sample, after: Sample) -> None:
        """Fill in ``m``'s CPU figures from two samples taken at the window's edges."""
        if before.server is not None and after.server is not None:
            m.server_cpu = after.server - before.server
        if before.db is not None and after.db is not None:
            m.db_cpu = after.db - before.db
        m.machine_cpu = after.machine - before.machine
        if before.inserts is not None and after.inserts is not None \
                and after.inserts > before.inserts:
            inserts = after.inserts - before.inserts
            m.db_inserts = inserts
            m.notes.append(f"{inserts:,} DB inserts in the window "
                           f"({m.events / inserts:,.1f} events per insert)")
        other = m.other_cores
        if other is not None and other > BUSY_CORES:
            m.notes.append(f"other processes used {other:.2f} cores during this window: "
                           "the machine was not quiet, numbers are pessimistic")

    def python_load(self, key: str, label: str, unit: str, argv: list[str], *,
                    procs: int, concurrency: int, events_per_op: int,
                    server_pids: Sequence[int], with_db: bool = True) -> Measurement:
        """Run ``argv`` (a bench.*_load module) in ``procs`` processes over one window."""
        self.begin(label)
        start = time.time() + STARTUP_SECONDS + self.args.warmup
        end = start + self.args.duration
        shares = [concurrency // procs + (1 if i < concurrency % procs else 0)
                  for i in range(procs)]
        children = [
            Child(f"{key}-{i}", [*argv, "--start", repr(start), "--end", repr(end),
                                 "--concurrency", str(share), "--proc-index", str(i),
                                 "--run-id", f"{self.run_id}-s{self.step}"],
                  self.work, stdout_pipe=True)
            for i, share in enumerate(shares) if share
        ]
        try:
            time.sleep(max(0.0, start - time.time()))
            before = self.sample(server_pids, with_db=with_db)
            time.sleep(max(0.0, end - time.time()))
            after = self.sample(server_pids, with_db=with_db)
            results = []
            for child in children:
                out, _ = child.process.communicate(timeout=120)
                lines = out.decode().strip().splitlines()
                if child.process.returncode != 0 or not lines:
                    raise RuntimeError(f"{child.name} failed (status {child.process.returncode})"
                                       f"; its log ends:\n{child.log_tail()}")
                results.append(LoadResult.from_json(lines[-1]))
        finally:
            for child in children:
                child.stop(5)
        m = self._measurement(key, label, unit, concurrency, events_per_op, merge(results))
        self.account(m, before, after)
        return self.finish(m)

    def _measurement(self, key: str, label: str, unit: str, concurrency: int,
                     events_per_op: int, result: LoadResult) -> Measurement:
        latencies = sorted(result.latencies_us)
        m = Measurement(
            key=key, label=label, unit=unit, concurrency=concurrency,
            events_per_op=events_per_op, ops=result.ops, events=result.events,
            errors=result.errors, duration=result.duration,
            p50_ms=percentile(latencies, 50) / 1000, p99_ms=percentile(latencies, 99) / 1000,
            loadgen_cpu=result.loadgen_cpu)
        if result.late:
            m.notes.append("a load generator started after the window opened "
                           "(raise STARTUP_SECONDS on a slow machine)")
        if result.first_error:
            m.notes.append(f"first error: {result.first_error}")
        return m

    def http_load(self, key: str, label: str, url: str, *, connections: int, batch: int,
                  token: str, server_pids: Sequence[int],
                  with_db: bool = True) -> Measurement:
        """HTTP load from wrk (or the aiohttp fallback) against ``url``."""
        events_per_op = batch or 1
        if self.http_client != "wrk":
            argv = [sys.executable, "-m", "bench.http_load", "--url", url,
                    "--mode", "batch" if batch else "single", "--batch", str(events_per_op),
                    "--token", token]
            return self.python_load(key, label, "req", argv, procs=self.args.http_procs,
                                    concurrency=connections, events_per_op=events_per_op,
                                    server_pids=server_pids, with_db=with_db)
        self.begin(label)
        wrk.run(url, connections=connections, seconds=self.args.warmup,
                run_id=f"{self.run_id}-s{self.step}w", batch=batch, token=token)
        before = self.sample(server_pids, with_db=with_db)
        result = wrk.run(url, connections=connections, seconds=self.args.duration,
                         run_id=f"{self.run_id}-s{self.step}", batch=batch, token=token)
        after = self.sample(server_pids, with_db=with_db)
        m = Measurement(
            key=key, label=label, unit="req", concurrency=connections,
            events_per_op=events_per_op, ops=result.ops, events=result.ops * events_per_op,
            errors=result.errors, duration=result.duration, p50_ms=result.p50_us / 1000,
            p99_ms=result.p99_us / 1000, loadgen_cpu=result.loadgen_cpu)
        self.account(m, before, after)
        return self.finish(m)

    # -- groups ---------------------------------------------------------------------------

    def raw(self) -> None:
        database = f"bench_raw_{self.run_id.replace('-', '_')}"
        base = [sys.executable, "-m", "bench.db_load", "--uri", self.db.uri,
                "--database", database, "--batch", str(self.args.batch)]
        for concurrency in (1, 64):
            self.python_load(
                f"raw.insert_one.c{concurrency}",
                f"raw insert_one, {concurrency} in flight", "insert",
                [*base, "--mode", "insert_one"], procs=1, concurrency=concurrency,
                events_per_op=1, server_pids=[])
        for concurrency in sorted({1, self.args.batch_concurrency}):
            self.python_load(
                f"raw.insert_many.c{concurrency}",
                f"raw insert_many({self.args.batch}), {concurrency} in flight", "insert",
                [*base, "--mode", "insert_many"], procs=1, concurrency=concurrency,
                events_per_op=self.args.batch, server_pids=[])
        self._drop(database)

    def bare(self, delay_ms: dict[str, float] | None = None) -> None:
        """The bare servers; with ``delay_ms`` (by load: "http", "grpc") each answering
        that much later, as paced rows of their own (``bare.http.paced`` ...)."""
        paced = delay_ms is not None
        http_delay = (delay_ms or {}).get("http")
        if not paced or http_delay is not None:
            self._bare_http(http_delay)
        grpc_delay = (delay_ms or {}).get("grpc")
        if not paced or grpc_delay is not None:
            self._bare_grpc(grpc_delay)

    def paced(self) -> None:
        """The bare servers again, answering after trackd's median latency of the same
        load: what they pay per request at trackd's request rate (bench.bare_http)."""
        found = {m.key: m for m in self.measurements}
        delays = {load: found[key].p50_ms for load, key in (
            ("http", "trackd.rest.single"), ("grpc", "trackd.grpc.track")) if key in found}
        if delays:
            self.bare(delays)

    def floor(self) -> None:
        """The Python floor of a REST batch and of a single event, in this process
        (bench.floor): no network, no database, so no warm-up and no other process."""
        for batch, key, label in ((self.args.batch, "floor.batch",
                                   f"floor: REST batch of {self.args.batch}"),
                                  (0, "floor.single", "floor: REST single event")):
            self.step += 1
            say(f"[{self.step:2d}/{self.steps}] {label} ... ({self.args.duration} s in this "
                f"process, no warm-up)")
            self.finish(python_floor.measure(key, label, batch=batch, seconds=self.args.duration,
                                      run_id=f"{self.run_id}-s{self.step}"))

    def _bare_http(self, delay_ms: float | None) -> None:
        key, label = "bare.http", "bare aiohttp 202"
        if delay_ms is not None:
            key, label = PACED_KEY.format(key), PACED_LABEL.format(label, delay_ms)
        port = self._port(self.args.bare_http_port)
        server = Child("bare-http", [sys.executable, "-m", "bench.bare_http", "--port", str(port),
                                     "--delay-ms", str(delay_ms or 0)], self.work)
        try:
            wait_for_ports(server, [port])
            self.http_load(key, label, f"http://127.0.0.1:{port}/api/v1/events",
                           connections=self.args.concurrency, batch=0, token="",
                           server_pids=[server.pid], with_db=False)
        finally:
            server.stop()

    def _bare_grpc(self, delay_ms: float | None) -> None:
        key, label = "bare.grpc", "bare grpc.aio no-op RPC"
        if delay_ms is not None:
            key, label = PACED_KEY.format(key), PACED_LABEL.format(label, delay_ms)
        port = self._port(self.args.bare_grpc_port)
        server = Child("bare-grpc", [sys.executable, "-m", "bench.bare_grpc", "--port", str(port),
                                     "--delay-ms", str(delay_ms or 0)], self.work)
        try:
            wait_for_ports(server, [port])
            self.python_load(
                key, label, "RPC",
                [sys.executable, "-m", "bench.grpc_load", "--target", f"127.0.0.1:{port}",
                 "--rpc", "TrackEvent"],
                procs=self.args.grpc_procs, concurrency=self.args.concurrency,
                events_per_op=1, server_pids=[server.pid], with_db=False)
        finally:
            server.stop()

    def trackd(self) -> None:
        database = f"bench_trackd_{self.run_id.replace('-', '_')}"
        token = self._create_key(database)
        http_port = self._port(self.args.trackd_http_port)
        grpc_port = self._port(self.args.trackd_grpc_port, avoid={http_port})
        # A rate limit would answer the load with 429s: off unless set on purpose.
        env = {"TRACKD_RATE_LIMIT_VIBEFOLLOW": "off", **os.environ,
               "MONGODB_URI": self.db.uri, "TRACKD_DATABASE": database}
        server = Child("trackd", [*self.trackd_exe, "serve", "--mongodb-uri", self.db.uri,
                                  "--database", database, "--host", "127.0.0.1",
                                  "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
                       self.work, env=env)
        try:
            wait_for_ports(server, [grpc_port, http_port], timeout=60)
            say(f"        trackd serving (pid {server.pid}): REST :{http_port}, gRPC :{grpc_port}")
            loads = self._trackd_loads(token, http_port, grpc_port, [server.pid])
            for phase in self.args.loads:
                loads[phase]()
                if not server.alive():
                    raise RuntimeError(f"trackd died during {phase}; its log ends:\n"
                                       f"{server.log_tail()}")
            for phase in self.args.profiles:
                self._profile(phase, server.pid, loads)
        finally:
            status = server.stop(self.args.duration + 30)
            if status not in (0, None):
                say(f"        note: trackd exited with status {status}")
        self._drop(database)

    def _trackd_loads(self, token: str, http_port: int, grpc_port: int,
                      pids: list[int]) -> dict[str, Any]:
        base = f"http://127.0.0.1:{http_port}/api/v1/events"
        a = self.args
        grpc_argv = [sys.executable, "-m", "bench.grpc_load", "--target",
                     f"127.0.0.1:{grpc_port}", "--token", token, "--batch", str(a.batch)]
        return {
            "rest.single": lambda: self.http_load(
                "trackd.rest.single", "trackd REST single event", base,
                connections=a.concurrency, batch=0, token=token, server_pids=pids),
            "rest.batch": lambda: self.http_load(
                "trackd.rest.batch", f"trackd REST batch of {a.batch}", f"{base}/batch",
                connections=a.batch_concurrency, batch=a.batch, token=token,
                server_pids=pids),
            "grpc.track": lambda: self.python_load(
                "trackd.grpc.track", "trackd gRPC TrackEvent", "RPC",
                [*grpc_argv, "--rpc", "TrackEvent"], procs=a.grpc_procs,
                concurrency=a.concurrency, events_per_op=1, server_pids=pids),
            "grpc.batch": lambda: self.python_load(
                "trackd.grpc.batch", f"trackd gRPC BatchTrack of {a.batch}", "RPC",
                [*grpc_argv, "--rpc", "BatchTrack"], procs=a.grpc_procs,
                concurrency=a.batch_concurrency, events_per_op=a.batch, server_pids=pids),
            "grpc.batch.struct": lambda: self.python_load(
                "trackd.grpc.batch.struct", f"trackd gRPC BatchTrack of {a.batch}, Struct",
                "RPC", [*grpc_argv, "--rpc", "BatchTrack", "--properties", "struct"],
                procs=a.grpc_procs, concurrency=a.batch_concurrency, events_per_op=a.batch,
                server_pids=pids),
        }

    def _profile(self, phase: str, pid: int, loads: dict[str, Any]) -> None:
        stamp = self.run_id.split("-")[0] + "-" + self.run_id.split("-")[1]
        output = self.args.results_dir / f"{stamp}-profile-{phase}.txt"
        seconds = self.args.profile_seconds
        saved = self.args.duration, self.args.warmup
        self.args.duration, self.args.warmup = seconds, 1
        say(f"        profiling trackd (pid {pid}) under {phase} with py-spy for {seconds} s")
        # py-spy starts once the load is past its start-up and warm-up, and stops before
        # the load does, so it samples trackd under steady load only.
        delay = 1.0 + (0.0 if phase.startswith("rest") and self.http_client == "wrk"
                       else STARTUP_SECONDS)
        started: list[subprocess.Popen[bytes]] = []
        timer = threading.Timer(delay, lambda: started.append(profiling.start(
            pid, max(1, seconds - 1), output, native=self.args.profile_native)))
        measured = len(self.measurements)
        try:
            timer.start()
            loads[phase]()
            timer.join()
            if not started:
                raise RuntimeError("py-spy did not start")
            recorder = started[0]
            out, _ = recorder.communicate(timeout=seconds + 60)
        finally:
            timer.cancel()
            self.args.duration, self.args.warmup = saved
            for process in started:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            del self.measurements[measured:]  # a profiled run is not a measurement
        if recorder.returncode != 0 or not output.exists():
            say(f"        py-spy failed: {out.decode(errors='replace').strip()[-500:]}")
            return
        summary = profiling.summarise(output)
        self.profiles[phase] = {"raw_stacks": str(output.relative_to(REPO))
                                if output.is_relative_to(REPO) else str(output),
                                **summary.to_dict()}
        say(f"        profile of {phase} (collapsed stacks in {output}):")
        say("\n".join("        " + line for line in summary.render().splitlines()))

    # -- helpers --------------------------------------------------------------------------

    def _port(self, wanted: int, avoid: set[int] | None = None) -> int:
        if wanted:
            return wanted
        while True:
            port = free_port()
            if port not in (avoid or set()):
                return port

    def _create_key(self, database: str) -> str:
        done = subprocess.run(
            [*self.trackd_exe, "keys", "create", "--project", "bench",
             "--mongodb-uri", self.db.uri, "--database", database],
            capture_output=True, text=True, check=False, cwd=REPO, env=child_env(),
            timeout=120)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise NotReady(f"trackd keys create failed ({done.returncode}): "
                           f"{done.stderr.strip()[-1000:]}")
        return lines[-1].strip()

    def _drop(self, database: str) -> None:
        client: MongoClient[dict[str, Any]] = MongoClient(self.db.uri,
                                                          serverSelectionTimeoutMS=5000)
        try:
            client.drop_database(database)
        except PyMongoError as exc:
            say(f"        note: could not drop {database}: {exc}")
        finally:
            client.close()


# -- start-up checks -------------------------------------------------------------------------


def trackd_command() -> list[str]:
    beside = Path(sys.executable).with_name("trackd")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("trackd")
    return [found] if found else [sys.executable, "-m", "trackd.cli.main"]


def choose_http_client(wanted: str) -> str:
    if wanted == "wrk" and not wrk.available():
        raise NotReady("--http-client wrk, but wrk is not installed "
                       "(apt-get install -y wrk, or use bench/run, which installs it)")
    if wanted == "auto":
        if wrk.available():
            return "wrk"
        say("note: wrk is not installed; using the aiohttp load generator "
            "(costs more CPU on the same cores; bench/run installs wrk)")
        return "aiohttp"
    return wanted


def check_ports(args: argparse.Namespace) -> None:
    fixed = {name: getattr(args, name.replace("-", "_") + "_port")
             for name in ("trackd-http", "trackd-grpc", "bare-http", "bare-grpc")}
    taken = [f"--{name}-port {port}" for name, port in fixed.items()
             if port and not port_is_free(port)]
    if taken:
        raise NotReady(f"port(s) already in use: {', '.join(taken)}")
    chosen = [p for p in fixed.values() if p]
    if len(chosen) != len(set(chosen)):
        raise NotReady("the same port was given twice")


def busy_cores(seconds: float = 1.0) -> float:
    """Cores in use by everything on the machine over the next ``seconds``."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


def wait_quiet(limit: int) -> None:
    """Warn (after waiting up to ``limit`` seconds for it to pass) when the CPUs are busy."""
    deadline = time.monotonic() + limit
    busy = busy_cores()
    while busy > BUSY_CORES and time.monotonic() < deadline:
        say(f"waiting for a quiet machine: other processes use {busy:.2f} cores")
        busy = busy_cores(5.0)
    if busy > BUSY_CORES:
        say(f"warning: other processes use {busy:.2f} cores of {os.cpu_count()}; the numbers "
            "will be pessimistic (each phase notes how much it was disturbed)")


def check_proc() -> None:
    if not Path(f"/proc/{os.getpid()}/stat").exists():
        raise NotReady("no /proc: CPU time per process cannot be read on this system")


@contextlib.contextmanager
def database(args: argparse.Namespace, work: Path) -> Iterator[Database]:
    if args.mongodb_uri:
        problem = ping(args.mongodb_uri)
        if problem:
            raise NotReady(f"the database at MONGODB_URI does not answer ping: {problem}")
        yield Database(args.mongodb_uri, None, None)
        return
    if not is_installed():
        raise NotReady("no database: set MONGODB_URI, or install the embedded one: "
                       ".venv/bin/pip install -e '.[embedded]'")
    embedded = EmbeddedDatabase(work / "db")
    try:
        uri = embedded.start()
    except EmbeddedUnavailable as exc:
        raise NotReady(f"the embedded database did not start: {exc}") from exc
    try:
        state = json.loads((work / "db" / "embedded.json").read_text())
        if ping(uri):
            raise NotReady("the embedded database started but does not answer ping")
        yield Database(uri, embedded, int(state["pid"]))
    finally:
        embedded.stop()


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("grpcio", "aiohttp", "pymongo", "protobuf", "pydantic", "msgspec", "uvloop",
                 "orjson", "secantusdb"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=REPO, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "trackd"],
                           capture_output=True, text=True, cwd=REPO,
                           check=False).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions,
            "git_commit": commit + ("+uncommitted" if dirty else "")}


def redact(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    if "@" in rest.split("/", 1)[0]:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="trackd-bench-"))
    host = machine()  # before the run: the commit measured, not one made meanwhile
    failed = True
    try:
        check_proc()
        check_ports(args)
        http_client = choose_http_client(args.http_client)
        if args.mongodb_uri and (problem := ping(args.mongodb_uri)):
            raise NotReady(f"the database at MONGODB_URI does not answer ping: {problem}")
        if args.profiles and profiling.py_spy() is None:
            raise NotReady("--profile needs py-spy: .venv/bin/pip install py-spy")
        args.results_dir.mkdir(parents=True, exist_ok=True)
        wait_quiet(args.wait_quiet)
        say(f"trackd bench {run_id}: {os.cpu_count()} CPUs, HTTP load from {http_client}, "
            f"{args.duration} s windows after {args.warmup} s warm-up")
        with database(args, work) as db:
            say(f"database: {redact(db.uri)}"
                + (f" (embedded SecantusDB, pid {db.pid})" if db.pid else ""))
            bench = Bench(args, work, db, run_id, http_client, trackd_command())
            bench.steps = (("raw" in args.groups) * (2 + len({1, args.batch_concurrency}))
                           + ("bare" in args.groups) * 2
                           + ("trackd" in args.groups) * (len(args.loads) + len(args.profiles))
                           + ("paced" in args.groups) * len(
                               {"rest.single", "grpc.track"} & set(args.loads))
                           + ("floor" in args.groups) * 2)
            started = time.monotonic()
            for group in GROUPS:
                if group in args.groups:
                    getattr(bench, group)()
            elapsed = time.monotonic() - started
        output = write_results(args, bench, stamp, elapsed, host)
        failed = False
    except NotReady as exc:
        print(f"bench: not ready: {exc}", file=sys.stderr)
        failed = False  # nothing ran: the message says it all
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


def write_results(args: argparse.Namespace, bench: Bench, stamp: str, elapsed: float,
                  host: dict[str, Any]) -> Path:
    found = {m.key: m for m in bench.measurements}
    items = ratios(found, args.batch)
    say("\n" + measurements_table(bench.measurements))
    say("\nCPU is the server process's own (trackd: gateway + gRPC server, one process); "
        "DB and load generator apart.")
    if items:
        say("\n" + ratios_table(items))
    document = {
        "run_id": bench.run_id,
        "started_at": stamp,
        "elapsed_seconds": round(elapsed, 1),
        "machine": host,
        "database": {"uri": redact(bench.db.uri), "embedded": bench.db.embedded is not None},
        "settings": {
            "duration": args.duration, "warmup": args.warmup, "concurrency": args.concurrency,
            "batch": args.batch, "batch_concurrency": args.batch_concurrency,
            "http_client": bench.http_client, "grpc_procs": args.grpc_procs,
            "trackd_env": {k: v for k, v in os.environ.items()
                           if k.startswith("TRACKD_") and k != "TRACKD_DATABASE"},
        },
        "measurements": {m.key: m.to_dict() for m in bench.measurements},
        "ratios": [r.to_dict() for r in items],
        "profiles": bench.profiles,
    }
    output: Path = args.results_dir / f"{stamp}.json"
    output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return output
