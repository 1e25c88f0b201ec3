"""The embedded local database: SecantusDB run as a child process (never imported).

With no ``MONGODB_URI``, trackd keeps its data in a directory of its own. The first
process to open that directory starts ``python -m secantus`` on a free loopback port,
records the port in ``embedded.json`` and holds ``embedded.lock`` while it runs; any
other trackd process on the same directory (``trackd keys create`` beside a running
``trackd serve``) finds the lock held and connects to the recorded port instead of
starting a second server on the same files.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from storage.errors import StorageError

STATE_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"
LOG_FILE = "secantus.log"

_PR_SET_PDEATHSIG = 1


class EmbeddedUnavailable(StorageError):
    """The embedded database is not installed, or did not start."""


def is_installed() -> bool:
    # find_spec raises ValueError for a module in sys.modules without a __spec__, and
    # ImportError-family errors for a broken parent package: neither is a usable install.
    try:
        return importlib.util.find_spec("secantus") is not None
    except (ImportError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # Runs in the child before exec: if trackd is killed outright, the database gets
    # SIGTERM and shuts down cleanly instead of lingering with the files locked.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def answers_ping(uri: str, timeout_ms: int = 500) -> bool:
    """Whether a MongoDB-compatible server at ``uri`` answers ``ping`` in time."""
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


class EmbeddedDatabase:
    """A handle on the embedded database serving ``data_dir``; use as a context manager.

    ``uri`` is valid between :meth:`start` and :meth:`stop`. Only the handle that started
    the child process stops it.
    """

    def __init__(self, data_dir: Path, *, startup_timeout: float = 60.0) -> None:
        self.data_dir = data_dir
        self.startup_timeout = startup_timeout
        self.uri = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def owner(self) -> bool:
        """True when this handle started (and will stop) the database process."""
        return self._process is not None

    def start(self) -> str:
        if not is_installed():
            raise EmbeddedUnavailable(
                "the embedded database is not installed: pip install 'trackd[embedded]', "
                "or set MONGODB_URI to use a MongoDB server"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            self.uri = self._attach()
            return self.uri
        self._lock = lock
        try:
            self.uri = self._spawn()
        except BaseException:
            self._unlock()
            raise
        return self.uri

    def _attach(self) -> str:
        """Connect to the database another process runs on this directory."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                state = json.loads((self.data_dir / STATE_FILE).read_text())
                uri = f"mongodb://127.0.0.1:{int(state['port'])}/?directConnection=true"
                if answers_ping(uri):
                    return uri
            time.sleep(0.2)
        raise EmbeddedUnavailable(
            f"another process holds {self.data_dir / LOCK_FILE} but its database does not answer"
        )

    def _spawn(self) -> str:
        log_path = self.data_dir / LOG_FILE
        last_error = ""
        for _ in range(3):  # the free port can be taken between our probe and the bind
            port = _free_port()
            uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "secantus", "--host", "127.0.0.1",
                     "--port", str(port), "--storage-path", str(self.data_dir / "db"),
                     "--log-level", "WARNING"],
                    cwd=self.data_dir,  # so it cannot pick up a stray ./secantusd.toml
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent,
                )
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline and process.poll() is None:
                if answers_ping(uri):
                    self._process = process
                    (self.data_dir / STATE_FILE).write_text(
                        json.dumps({"pid": process.pid, "port": port})
                    )
                    return uri
                time.sleep(0.1)
            if process.poll() is None:
                process.kill()
                process.wait()
            last_error = log_path.read_text(errors="replace")[-2000:]
        raise EmbeddedUnavailable(
            f"the embedded database did not start; its log ends:\n{last_error}")

    def stop(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / STATE_FILE).unlink()
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._unlock()

    def kill(self) -> None:
        """SIGKILL the database process (for failure tests); the handle can start again."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
        self._unlock()

    def _unlock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["EmbeddedDatabase", "EmbeddedUnavailable", "is_installed"]
