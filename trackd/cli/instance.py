"""One ``trackd serve`` per data directory: ``serve.lock`` held while it runs, and
``serve.json`` saying who it is (pid, host, ports), for the next one to name.

This is distinct from the embedded database's own ``embedded.lock``, which tells admin
commands (``trackd keys ...``) to attach to the running database rather than start one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import IO

LOCK_FILE = "serve.lock"
STATE_FILE = "serve.json"


class AlreadyServed(Exception):
    """Another ``trackd serve`` holds this data directory; the message names it."""


class ServeLock:
    """Held from before the database starts until trackd exits."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._lock: IO[str] | None = None

    def acquire(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise AlreadyServed(self._describe_holder()) from None
        self._lock = lock
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / STATE_FILE).unlink()  # a previous instance's, killed outright

    def record(self, host: str, grpc_port: int, http_port: int) -> None:
        """Say who serves: called once both ports are bound."""
        (self.data_dir / STATE_FILE).write_text(json.dumps(
            {"pid": os.getpid(), "host": host, "grpc_port": grpc_port,
             "http_port": http_port}))

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is None:
            return
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / STATE_FILE).unlink()
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()

    def _describe_holder(self) -> str:
        where = f"{self.data_dir} is already served by another trackd serve"
        try:
            state = json.loads((self.data_dir / STATE_FILE).read_text())
            return (f"{where} (pid {int(state['pid'])}, gRPC on {state['host']}:"
                    f"{int(state['grpc_port'])}, REST on {state['host']}:"
                    f"{int(state['http_port'])}); stop it, or give this one another "
                    f"--data-dir (TRACKD_DATA_DIR)")
        except (OSError, ValueError, KeyError, TypeError):
            return (f"{where} (still starting: its pid and ports are not recorded yet); "
                    f"stop it, or give this one another --data-dir (TRACKD_DATA_DIR)")
