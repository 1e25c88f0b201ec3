"""``bench/run sdk``: events/s through the Python SDK from one process, next to raw
BatchTrack calls of the same batch size and the same number in flight, on the same trackd
in the same run.

1. ``trackd serve`` on the embedded database (or ``MONGODB_URI``), as ``bench/run`` runs it;
2. raw: :mod:`bench.grpc_load` keeping ``--batch-concurrency`` BatchTrack calls of
   ``--batch`` events in flight (each event prebuilt from a template: the floor of what a
   client costs; properties as a Struct, as the SDK sends them);
3. SDK: :mod:`bench.sdk_load`, one process calling ``Client.track()`` in a loop with
   ``max_in_flight`` = ``--batch-concurrency`` and ``batch_size`` = ``--batch``: every
   event checked, given its time and encoded, as a service's would be.

The ratios are SDK events/s ÷ raw events/s, and the client process's CPU per event
(SDK process ÷ raw load generator: what the SDK's checks, encoding and threads cost).
Options are ``python -m bench``'s (``--duration``, ``--warmup``, ``--batch``,
``--batch-concurrency``, ``--mongodb-uri``, ...).
"""

from __future__ import annotations

import json
import math
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.main import (
    Bench,
    check_proc,
    database,
    machine,
    parse_args,
    say,
    trackd_command,
)
from bench.procs import NotReady
from bench.report import Ratio, measurements_table, ratios_table

RAW = "trackd.grpc.batch.struct"  # the SDK sends properties as a Struct too
SDK = "trackd.sdk"


class SdkBench(Bench):
    def _trackd_loads(self, token: str, http_port: int, grpc_port: int,
                      pids: list[int]) -> dict[str, Any]:
        loads = super()._trackd_loads(token, http_port, grpc_port, pids)
        a = self.args
        loads["sdk"] = lambda: self.python_load(
            SDK, f"trackd Python SDK, batches of {a.batch}", "event",
            [sys.executable, "-m", "bench.sdk_load", "--target", f"127.0.0.1:{grpc_port}",
             "--token", token, "--batch", str(a.batch)],
            procs=1, concurrency=a.batch_concurrency, events_per_op=1, server_pids=pids)
        return loads


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.groups, args.loads, args.profiles = ["trackd"], ["grpc.batch.struct", "sdk"], []
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="trackd-bench-sdk-"))
    host = machine()
    failed = True
    try:
        check_proc()
        args.results_dir.mkdir(parents=True, exist_ok=True)
        say(f"trackd SDK bench {run_id}: {args.duration} s windows after {args.warmup} s "
            f"warm-up, batches of {args.batch}, {args.batch_concurrency} in flight")
        with database(args, work) as db:
            bench = SdkBench(args, work, db, run_id, "none", trackd_command())
            bench.steps = 2
            started = time.monotonic()
            bench.trackd()
            elapsed = time.monotonic() - started
        found = {m.key: m for m in bench.measurements}
        raw, sdk = found[RAW], found[SDK]
        value = sdk.events_per_s / raw.events_per_s if raw.events_per_s else math.nan
        items = [Ratio("SDK events/s ÷ raw BatchTrack events/s", value, "", None,
                       f"SDK {sdk.events_per_s:,.1f} / raw {raw.events_per_s:,.1f}")]
        sdk_cpu, raw_cpu = (sdk.cpu_us_per_event(sdk.loadgen_cpu),
                            raw.cpu_us_per_event(raw.loadgen_cpu))
        items.append(Ratio(
            "client CPU per event: SDK ÷ raw", sdk_cpu / raw_cpu if raw_cpu else math.nan,
            "", None, f"SDK {sdk_cpu:,.1f} µs / raw {raw_cpu:,.1f} µs"))
        say("\n" + measurements_table(bench.measurements))
        say("\n" + ratios_table(items))
        output = args.results_dir / f"{stamp}-sdk.json"
        output.write_text(json.dumps({
            "run_id": run_id, "started_at": stamp, "elapsed_seconds": round(elapsed, 1),
            "machine": host,
            "settings": {"duration": args.duration, "warmup": args.warmup,
                         "batch": args.batch, "batch_concurrency": args.batch_concurrency},
            "measurements": {m.key: m.to_dict() for m in bench.measurements},
            "ratios": [r.to_dict() for r in items],
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
