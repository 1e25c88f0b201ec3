"""Webhook delivery: how fast, at what CPU, and what it costs ingest.

``bench/run webhooks`` (or ``python -m bench.webhooks``), on the embedded database (or
``MONGODB_URI``), in one run:

1. delivery throughput and the deliverer's CPU per delivered event, at batch size 1 and
   100: ``--events`` events (5,000) are stored first, then a deliverer (in this process,
   whose CPU is measured; the receiver, ``bench.webhook_receiver``, is a process of its
   own) delivers them to a local receiver answering 204;
2. ingest with two endpoints on ÷ off: ``trackd serve`` alternately with no endpoint and
   with two (batch size 1, to the local receiver), ``--rounds`` (3) pairs of REST single
   events and gRPC TrackEvent windows, as ``bench/run ratelimit`` does; the ratio is the
   median of each round's events/s on ÷ off (target ≥ 0.9);
3. the lag while that ingest runs: ``trackd_webhook_lag_seconds`` read from trackd's
   ``/metrics`` every 250 ms during the "on" windows, its maximum (target: under 2 s).

Options are bench.main's (``--duration``, ``--warmup``, ``--concurrency``, ...).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.main import (
    Bench,
    check_ports,
    check_proc,
    choose_http_client,
    database,
    parse_args,
    say,
    trackd_command,
)
from bench.procs import Child, NotReady, child_env, free_port, wait_for_ports
from bench.report import measurements_table
from trackd.outbound.config import DeliveryConfig
from trackd.outbound.deliverer import Deliverer
from trackd.server.webhooks import Webhooks
from trackd.storage import connect

LOADS = ("rest.single", "grpc.track")
INGEST_TARGET = 0.9
LAG_TARGET = 2.0


def receiver_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as answer:
        return int(json.loads(answer.read())["events"])


async def delivery(uri: str, port: int, batch_size: int, events: int) -> dict[str, float]:
    """Store ``events`` events, then deliver them all; throughput and CPU per event."""
    name = f"bench_webhooks_{secrets.token_hex(4)}"
    store = await connect(uri, name)
    try:
        await Webhooks(store, allow_private=True).create(
            "bench", f"http://127.0.0.1:{port}/hook", [], batch_size)
        now = datetime.now(UTC)
        for first in range(0, events, 500):
            await store.events.insert_many([{
                "project_id": "bench", "event_id": f"{name}-{n}", "name": "feature_used",
                "user_id": f"user_{n % 200}", "anonymous_id": None, "timestamp": now,
                "received_at": now, "properties": {"feature": "export", "n": n},
                "via": "grpc"} for n in range(first, min(first + 500, events))])
        before = receiver_count(port)
        deliverer = Deliverer(store.db, store.webhooks, store.deliveries,
                              DeliveryConfig(allow_private=True))
        cpu, started = time.process_time(), time.monotonic()
        deliverer.start()
        while True:  # the receiver's count, 20 times a second (a little of the CPU)
            if await asyncio.to_thread(receiver_count, port) - before >= events:
                break
            await asyncio.sleep(0.05)
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        await deliverer.close()
        return {"events_per_s": events / elapsed, "cpu_us_per_event": cpu / events * 1e6,
                "seconds": elapsed}
    finally:
        await store.client.drop_database(name)
        await store.close()


class WebhookBench(Bench):
    """bench.main's trackd phase, with ``endpoints`` endpoints made before it serves and
    the lag sampled while it is loaded."""

    endpoints = 0
    receiver_port = 0
    lags: list[float]

    def _create_key(self, database: str) -> str:
        token = super()._create_key(database)
        for _ in range(self.endpoints):
            done = subprocess.run(
                [*self.trackd_exe, "webhooks", "create", "--project", "bench", "--url",
                 f"http://127.0.0.1:{self.receiver_port}/hook", "--mongodb-uri", self.db.uri,
                 "--database", database], capture_output=True, text=True, check=False,
                env=child_env({"TRACKD_WEBHOOK_ALLOW_PRIVATE": "true"}), timeout=120)
            if done.returncode != 0:
                raise NotReady(f"trackd webhooks create failed: {done.stderr.strip()}")
        return token

    def _trackd_loads(self, token: str, http_port: int, grpc_port: int,
                      pids: list[int]) -> dict[str, Any]:
        loads = super()._trackd_loads(token, http_port, grpc_port, pids)
        return {name: self._sampled(load, http_port) for name, load in loads.items()}

    def _sampled(self, load: Callable[[], Any], http_port: int) -> Callable[[], Any]:
        def run() -> Any:
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.25):
                    try:
                        with urllib.request.urlopen(
                                f"http://127.0.0.1:{http_port}/metrics", timeout=2) as page:
                            for line in page.read().decode().splitlines():
                                if line.startswith("trackd_webhook_lag_seconds "):
                                    self.lags.append(float(line.split()[1]))
                    except OSError:
                        pass
            thread = threading.Thread(target=sample, daemon=True)
            thread.start()
            try:
                return load()
            finally:
                stop.set()
                thread.join()
        return run


def main(argv: Sequence[str] | None = None) -> int:
    rest = list(sys.argv[1:] if argv is None else argv)
    rounds, events = 3, 5000
    for flag in ("--rounds", "--events"):
        if flag in rest:
            at = rest.index(flag)
            value = int(rest[at + 1])
            del rest[at:at + 2]
            rounds, events = (value, events) if flag == "--rounds" else (rounds, value)
    args = parse_args(["--only", "trackd", "--trackd-loads", ",".join(LOADS), *rest])
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="trackd-bench-webhooks-"))
    results: dict[str, Any] = {"run_id": run_id}
    try:
        check_proc()
        check_ports(args)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        receiver = Child("receiver", [sys.executable, "-m", "bench.webhook_receiver",
                                      "--port", str(port)], work)
        try:
            wait_for_ports(receiver, [port], timeout=30)
            with database(args, work) as db:
                for size in (1, 100):
                    say(f"delivery of {events} events at batch size {size} ...")
                    got = asyncio.run(delivery(db.uri, port, size, events))
                    results[f"delivery.batch{size}"] = got
                    say(f"  {got['events_per_s']:,.0f} events/s, "
                        f"{got['cpu_us_per_event']:,.1f} µs deliverer CPU/event")
                bench = WebhookBench(args, work, db, run_id,
                                     choose_http_client(args.http_client), trackd_command())
                bench.receiver_port, bench.lags = port, []
                bench.steps = rounds * 2 * len(LOADS)
                lags: list[float] = []
                # The receiver is on loopback: trackd serve (which gets this process's
                # environment) must be allowed to reach it.
                os.environ["TRACKD_WEBHOOK_ALLOW_PRIVATE"] = "true"
                for round_ in range(rounds):
                    for mode, count in (("off", 0), ("on", 2)):
                        bench.endpoints, bench.lags = count, []
                        first = len(bench.measurements)
                        bench.trackd()
                        if mode == "on":
                            lags += bench.lags
                        for m in bench.measurements[first:]:
                            m.key = f"{mode}.{round_}.{m.key}"
                            m.label = f"endpoints {mode}: {m.label}"
        finally:
            receiver.stop()
    except NotReady as exc:
        print(f"bench: not ready: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"bench: failed: {exc} (logs kept in {work})", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)

    say("\n" + measurements_table(bench.measurements))
    found = {m.key: m for m in bench.measurements}
    for load in LOADS:
        per_round = [found[f"on.{r}.trackd.{load}"].events_per_s
                     / found[f"off.{r}.trackd.{load}"].events_per_s for r in range(rounds)]
        median = statistics.median(per_round)
        results[f"ingest.{load}"] = {"per_round": per_round, "median": median}
        say(f"{load}: two endpoints on ÷ off = {median:.3f} (median; rounds: "
            f"{', '.join(f'{r:.3f}' for r in per_round)}; target ≥ {INGEST_TARGET}) "
            f"{'ok' if median >= INGEST_TARGET else 'BELOW TARGET'}")
    worst = max(lags, default=float("nan"))
    results["lag_max_seconds"] = worst
    say(f"lag while ingest ran: max {worst:.2f} s over {len(lags)} samples "
        f"(target < {LAG_TARGET} s) {'ok' if worst < LAG_TARGET else 'ABOVE TARGET'}")
    for size in (1, 100):
        got = results[f"delivery.batch{size}"]
        say(f"delivery, batch size {size}: {got['events_per_s']:,.0f} events/s, "
            f"{got['cpu_us_per_event']:,.1f} µs CPU/event")
    results["measurements"] = {m.key: m.to_dict() for m in bench.measurements}
    output = args.results_dir / f"{stamp}-webhooks.json"
    output.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    say(f"\nresults written to {output} ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
