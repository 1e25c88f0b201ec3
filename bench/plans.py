"""What a tracking plan costs ingest: trackd without a plan, then with a 50-event plan in
observe mode, in the same run.

``python -m bench.plans`` (``bench/run plans``) runs ``trackd serve`` on one database
alternately with the bench project planless and with :func:`plan` set by ``trackd plans
set`` (50 events; the bench's ``user_signed_up`` among them, with a schema its events
meet, so the judged path is the common one: a validator that finds nothing). ``--rounds``
pairs (default 3) of REST single events and REST batches (``--batch``, default 500)
windows, interleaved so drift on the machine falls on both; the ratio is the median over
the rounds of each round's events/s with the plan over without (the target: at least
0.9). Options are bench.main's (``--duration``, ``--warmup``, ``--concurrency``, ...).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
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
from bench.procs import REPO, NotReady, child_env
from bench.report import measurements_table

TARGET = 0.9
LOADS = ("rest.single", "rest.batch")
MODES = ("none", "plan")
PLAN_EVENTS = 50


def plan() -> dict[str, Any]:
    """Observe mode, 50 events; ``user_signed_up`` as the bench sends it."""
    events: dict[str, Any] = {"user_signed_up": {"properties": {
        "type": "object", "required": ["plan"],
        "properties": {"plan": {"type": "string", "enum": ["trial", "pro", "enterprise"]},
                       "source": {"type": "string"}, "n": {"type": "integer", "minimum": 0}},
        "additionalProperties": False}}}
    for i in range(1, PLAN_EVENTS):
        events[f"event_{i}"] = {"properties": {
            "type": "object", "required": ["id"],
            "properties": {"id": {"type": "string"}, "value": {"type": "number"}}}}
    return {"enforcement": "observe", "unplanned_events": "flag", "events": events}


class PlanBench(Bench):
    """The ingest bench, with the plan set on the bench project when ``plan_file`` is."""

    plan_file: Path | None = None

    def _create_key(self, database: str) -> str:
        token = super()._create_key(database)
        if self.plan_file is not None:
            done = subprocess.run(
                [*self.trackd_exe, "plans", "set", "--project", "bench", "--mongodb-uri",
                 self.db.uri, "--database", database, str(self.plan_file)],
                capture_output=True, text=True, check=False, cwd=REPO, env=child_env(),
                timeout=120)
            if done.returncode != 0:
                raise NotReady(f"trackd plans set failed ({done.returncode}): "
                               f"{done.stderr.strip()[-1000:]}")
        return token


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
    work = Path(tempfile.mkdtemp(prefix="trackd-bench-plans-"))
    plan_file = work / "plan.json"
    plan_file.write_text(json.dumps(plan()))
    host = machine()
    try:
        check_proc()
        check_ports(args)
        http_client = choose_http_client(args.http_client)
        args.results_dir.mkdir(parents=True, exist_ok=True)
        say(f"trackd tracking plan bench {run_id}: {os.cpu_count()} CPUs, HTTP load from "
            f"{http_client}, {rounds} rounds without/with a {PLAN_EVENTS}-event plan "
            f"(observe), {args.duration} s windows")
        with database(args, work) as db:
            bench = PlanBench(args, work, db, run_id, http_client, trackd_command())
            bench.steps = rounds * len(MODES) * len(LOADS)
            started = time.monotonic()
            for round_ in range(rounds):
                for mode in MODES:
                    bench.plan_file = plan_file if mode == "plan" else None
                    first = len(bench.measurements)
                    bench.trackd()
                    for m in bench.measurements[first:]:
                        m.key = f"{mode}.{round_}.{m.key}"
                        m.label = f"plan {mode}: {m.label}"
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
        # A window in which nothing finished (a loaded machine, a short --duration) has no
        # ratio: it is left out, and said so.
        per_round = [found[f"plan.{r}.trackd.{load}"].events_per_s
                     / found[f"none.{r}.trackd.{load}"].events_per_s for r in range(rounds)
                     if found[f"none.{r}.trackd.{load}"].events_per_s]
        if not per_round:
            say(f"{load}: no window without a plan finished a request: no ratio "
                "(a longer --duration)")
            continue
        median = statistics.median(per_round)
        ratios[load] = {"per_round": per_round, "median": median}
        say(f"{load}: {PLAN_EVENTS}-event plan (observe) ÷ no plan = {median:.3f} (median; "
            f"rounds: {', '.join(f'{r:.3f}' for r in per_round)}; target ≥ {TARGET}) "
            f"{'ok' if median >= TARGET else 'BELOW TARGET'}")
    output = args.results_dir / f"{stamp}-plans.json"
    output.write_text(json.dumps({
        "run_id": run_id, "started_at": stamp, "elapsed_seconds": round(elapsed, 1),
        "machine": host, "database": {"uri": redact(db.uri)}, "rounds": rounds,
        "plan_events": PLAN_EVENTS,
        "measurements": {m.key: m.to_dict() for m in bench.measurements},
        "ratios": ratios, "target": TARGET,
    }, indent=2, ensure_ascii=False) + "\n")
    say(f"\nresults written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
