"""What rate limits cost ingest: trackd with limits off, then on, in the same run.

``python -m bench.ratelimit`` (``bench/run ratelimit``) runs ``trackd serve`` on one
database alternately with every rate limit off and with limits on that never refuse (a
billion requests per minute for VibeFollow and for direct gRPC callers), so every request
is counted and every count synchronised through the database each 250 ms exactly as a
real limit would be, and only the cost is measured. ``--rounds`` pairs (default 3) of
REST single events and gRPC TrackEvent windows, interleaved off/on so drift on the
machine falls on both; the ratio is the median over the rounds of each round's events/s
with limits on over off (the target: at least 0.95). Options are bench.main's
(``--duration``, ``--warmup``, ``--concurrency``, ``--mongodb-uri``, ...).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.main import (
    Bench,
    check_ports,
    check_proc,
    choose_http_client,
    database,
    machine,
    parse_args,
    redact,
    say,
    trackd_command,
)
from bench.procs import NotReady
from bench.report import measurements_table

TARGET = 0.95
LOADS = ("rest.single", "grpc.track")
MODES = {
    "off": {"TRACKD_RATE_LIMIT_VIBEFOLLOW": "off", "TRACKD_RATE_LIMIT_GRPC": "off"},
    "on": {"TRACKD_RATE_LIMIT_VIBEFOLLOW": "1000000000/60",
           "TRACKD_RATE_LIMIT_GRPC": "1000000000/60"},
}


def main(argv: Sequence[str] | None = None) -> int:
    rest = list(sys.argv[1:] if argv is None else argv)
    rounds = 3
    if "--rounds" in rest:
        at = rest.index("--rounds")
        rounds = int(rest[at + 1])
        del rest[at:at + 2]
    args = parse_args(["--only", "trackd", "--trackd-loads", ",".join(LOADS), *rest])
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="trackd-bench-ratelimit-"))
    host = machine()
    try:
        check_proc()
        check_ports(args)
        http_client = choose_http_client(args.http_client)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        say(f"trackd rate limit bench {run_id}: {os.cpu_count()} CPUs, HTTP load from "
            f"{http_client}, {rounds} rounds of limits off/on, {args.duration} s windows")
        saved = {name: os.environ.get(name) for name in MODES["on"]}
        with database(args, work) as db:
            bench = Bench(args, work, db, run_id, http_client, trackd_command())
            bench.steps = rounds * len(MODES) * len(LOADS)
            started = time.monotonic()
            try:
                for round_ in range(rounds):
                    for mode, env in MODES.items():
                        os.environ.update(env)  # bench.trackd passes the environment on
                        first = len(bench.measurements)
                        bench.trackd()
                        for m in bench.measurements[first:]:
                            m.key = f"{mode}.{round_}.{m.key}"
                            m.label = f"limits {mode}: {m.label}"
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
            elapsed = time.monotonic() - started
    except NotReady as exc:
        print(f"bench: not ready: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"bench: failed: {exc} (logs kept in {work})", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)

    say("\n" + measurements_table(bench.measurements))
    ratios: dict[str, dict[str, Any]] = {}
    found = {m.key: m for m in bench.measurements}
    for load in LOADS:
        # Each round's own ratio (its two windows are adjacent in time), and their median:
        # one disturbed window moves the median less than a sum.
        per_round = [found[f"on.{r}.trackd.{load}"].events_per_s
                     / found[f"off.{r}.trackd.{load}"].events_per_s for r in range(rounds)]
        median = statistics.median(per_round)
        ratios[load] = {"per_round": per_round, "median": median}
        say(f"{load}: limits on ÷ off = {median:.3f} (median; rounds: "
            f"{', '.join(f'{r:.3f}' for r in per_round)}; target ≥ {TARGET}) "
            f"{'ok' if median >= TARGET else 'BELOW TARGET'}")
    output = args.results_dir / f"{stamp}-ratelimit.json"
    output.write_text(json.dumps({
        "run_id": run_id, "started_at": stamp, "elapsed_seconds": round(elapsed, 1),
        "machine": host, "database": {"uri": redact(db.uri)}, "rounds": rounds,
        "modes": MODES, "measurements": {m.key: m.to_dict() for m in bench.measurements},
        "ratios": ratios, "target": TARGET,
    }, indent=2, ensure_ascii=False) + "\n")
    say(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
