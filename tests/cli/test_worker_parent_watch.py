"""A worker's own watch of its supervisor (:func:`trackd.cli.workers.watch_parent`), as real
processes: a stand-in supervisor starts a stand-in worker whose drain never finishes (it
ignores SIGTERM and its main thread sleeps on); the supervisor is SIGKILLed, and the worker
still ends, with the orphaned worker's exit status, once its bound has passed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.durability.harness import STOP_TIMEOUT, alive

# The worker: no PR_SET_PDEATHSIG, no drain that ends: only the watch can end it. It
# writes its exit status where the test can read it (it is not the test's child).
WORKER = """
import os, signal, sys, time
from trackd.cli import workers
signal.signal(signal.SIGTERM, lambda *_: print("drain asked", flush=True))
status_file = sys.argv[2]
real_exit = os._exit
def record(status):
    with open(status_file, "w") as f:
        f.write(str(status))
    real_exit(status)
os._exit = record
workers.watch_parent(int(sys.argv[1]), bound=1.0)
print("watching", flush=True)
while True:
    time.sleep(3600)
"""

SUPERVISOR = """
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), sys.argv[2]],
                          stdout=open(sys.argv[3], "w"))
print(worker.pid, flush=True)
time.sleep(3600)
"""


def test_a_worker_whose_supervisor_died_ends_even_if_its_drain_never_does(
        tmp_path: Path) -> None:
    status, out = tmp_path / "status", tmp_path / "worker.out"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, WORKER, str(status), str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert supervisor.stdout is not None
        worker = int(supervisor.stdout.readline())
        deadline = time.monotonic() + STOP_TIMEOUT
        while "watching" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "watching" in out.read_text()
        supervisor.kill()
        supervisor.wait(STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(worker), "the worker outlived its supervisor"
        # It asked for the drain (SIGTERM to itself), then ended on its own.
        assert out.read_text().splitlines() == ["watching", "drain asked"]
        assert status.read_text() == "70"
    finally:
        supervisor.kill()
        supervisor.wait(STOP_TIMEOUT)
        if "worker" in locals() and alive(worker):
            os.kill(worker, signal.SIGKILL)
