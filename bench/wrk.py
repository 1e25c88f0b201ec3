"""Driving wrk (Debian's ``wrk``) with :file:`bench/post.lua` for HTTP load.

wrk is a C load generator: it leaves far more of this machine's two cores to the server
under test than a Python client would. Its result becomes the same shape as the Python
generators' (:class:`WrkResult`), with wrk's own p50/p99 (it keeps every latency).
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("post.lua")
MARKER = "WRK_RESULT "


class WrkFailed(RuntimeError):
    """wrk exited badly or printed no result line."""


@dataclass
class WrkResult:
    ops: int            # requests answered 2xx/3xx
    errors: int         # non-2xx answers, socket errors, timeouts
    duration: float     # seconds wrk ran
    p50_us: float
    p99_us: float
    loadgen_cpu: float  # CPU seconds wrk used


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, *, connections: int, seconds: int, run_id: str, batch: int = 0,
        token: str = "", threads: int = 1) -> WrkResult:
    """One wrk run of ``seconds`` with ``connections`` kept busy; ``batch`` 0 = one event."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "60s",
            "-s", str(SCRIPT), url, "--", run_id, str(batch), token]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, check=False,
                          timeout=seconds + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(MARKER)), None)
    if done.returncode != 0 or line is None:
        raise WrkFailed(f"wrk exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    raw = json.loads(line.removeprefix(MARKER))
    errors = (raw["status_errors"] + raw["connect_errors"] + raw["read_errors"]
              + raw["write_errors"] + raw["timeouts"])
    return WrkResult(
        ops=raw["requests"] - raw["status_errors"],
        errors=errors,
        duration=raw["duration_us"] / 1e6,
        p50_us=float(raw["p50_us"]),
        p99_us=float(raw["p99_us"]),
        loadgen_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )
