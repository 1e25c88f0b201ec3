"""A live ``trackd serve`` process for tests that drive the gateway from outside the test's
event loop (schemathesis, a browser): the real CLI on free ports, on the test run's
database under a database name of its own, stopped (SIGTERM, then kill) afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient

from tests.conftest import URI_ENV, free_ports

TRACKD = Path(sys.executable).parent / "trackd"
READY_LINE = "trackd is serving"
DEV_KEY_BANNER = "Created a development API key for project 'default'"
START_TIMEOUT = 90.0  # bounds for a stuck process, never asserted on
STOP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Live:
    url: str
    key: str  # the development key of project 'default' (every scope)
    database: str
    logs: Path
    env: Mapping[str, str]  # the server's environment, for the CLI beside it


def trackd_command(live: Live, *args: str) -> str:
    """``trackd ARGS`` on the live server's database; its standard output."""
    result = subprocess.run([str(TRACKD), *args], env=dict(live.env), cwd=live.logs,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=START_TIMEOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"trackd {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def create_website(live: Live, origin: str) -> str:
    """A website of project 'default' allowing ``origin``; its id."""
    return trackd_command(live, "websites", "create", "--project", "default",
                          "--origin", origin).strip().splitlines()[-1].strip()


def _dev_key(stdout: str) -> str:
    lines = stdout.splitlines()
    banner = [i for i, line in enumerate(lines) if DEV_KEY_BANNER in line]
    if not banner:
        raise RuntimeError(f"no development key in trackd's output:\n{stdout}")
    return lines[banner[0] + 1].strip()


@contextlib.contextmanager
def live_trackd(logs: Path, env: Mapping[str, str] | None = None) -> Iterator[Live]:
    """``trackd serve`` with ``env`` added to its environment, ready for requests."""
    uri = os.environ[URI_ENV]
    database = f"t_{uuid.uuid4().hex[:16]}"
    grpc_port, http_port = free_ports(2)
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("TRACKD_") and key != "MONGODB_URI"}
    environment.update({"MONGODB_URI": uri, "TRACKD_DATABASE": database, **(env or {})})
    out_path, err_path = logs / "trackd.out", logs / "trackd.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [str(TRACKD), "serve", "--host", "127.0.0.1", "--grpc-port", str(grpc_port),
             "--http-port", str(http_port)],
            cwd=logs, env=environment, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while READY_LINE not in err_path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("trackd serve did not start:\n"
                                       + err_path.read_text(errors="replace"))
                time.sleep(0.1)
            yield Live(f"http://127.0.0.1:{http_port}",
                       _dev_key(out_path.read_text(errors="replace")), database, logs,
                       environment)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT)
            client: MongoClient[dict[str, object]] = MongoClient(uri)
            try:
                client.drop_database(database)
            finally:
                client.close()
