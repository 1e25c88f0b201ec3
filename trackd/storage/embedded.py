"""The embedded local database: SecantusDB run as a child process (never imported).

With no ``MONGODB_URI``, trackd keeps its data in a directory of its own. The first
process to open that directory starts ``python -m secantus`` on a free loopback port,
records the port in ``embedded.json`` and holds ``embedded.lock`` while it runs; any
other trackd process on the same directory (``trackd keys create`` beside a running
``trackd serve``) finds the lock held and connects to the recorded port instead of
starting a second server on the same files, waiting a bounded time
(``attach_timeout``) while the owner restarts it.

The port is picked below the kernel's ephemeral range, so no outgoing connection takes
it while the database is down, and :meth:`EmbeddedDatabase.supervise` can start a dead
database again on the same port and data: clients (trackd's own connection pool, and
any ``trackd keys`` beside it) simply reconnect. The child runs in a session (and so a
process group) of its own, so a terminal's Ctrl-C reaches only trackd, which drains and
then stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from trackd.storage.child_process import (
    DIE_WITH_PARENT,
    answers_ping,
    can_bind,
    describe_exit,
    stable_port,
)
from trackd.storage.errors import StorageError

log = logging.getLogger(__name__)

STATE_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"
LOG_FILE = "secantus.log"
# The change history (oplog) outlives a day, so Subscribe cursors and webhook delivery
# positions hold at least 24 h (SecantusDB keeps 1 h and 100,000 changes by default).
# The entry cap bounds the disk it takes: 20 million changes, about 24 h at 230 events/s.
OPLOG_RETENTION_SECONDS = 25 * 60 * 60
OPLOG_MAX_ENTRIES = 20_000_000
OPLOG_ARGS = ("--oplog-retention-seconds", str(OPLOG_RETENTION_SECONDS),
              "--oplog-max-entries", str(OPLOG_MAX_ENTRIES))

# Restarts after the database dies: the first after 0.5 s, each further one twice as late,
# at most 10 s apart; a database that ran this long without dying starts afresh at 0.5 s.
RESTART_FIRST_DELAY = 0.5
RESTART_MAX_DELAY = 10.0
RESTART_STABLE_AFTER = 30.0
# How often the supervisor looks whether the child is still alive (and reaps it).
SUPERVISE_POLL_SECONDS = 0.1


class EmbeddedUnavailable(StorageError):
    """The embedded database is not installed, or did not start."""


def is_installed() -> bool:
    # find_spec raises ValueError for a module in sys.modules without a __spec__, and
    # ImportError-family errors for a broken parent package: neither is a usable install.
    try:
        return importlib.util.find_spec("secantus") is not None
    except (ImportError, ValueError):
        return False


class EmbeddedDatabase:
    """A handle on the embedded database serving ``data_dir``; use as a context manager.

    ``uri`` is valid between :meth:`start` and :meth:`stop`. Only the handle that started
    the child process stops it.
    """

    def __init__(self, data_dir: Path, *, startup_timeout: float = 60.0,
                 attach_timeout: float = 30.0) -> None:
        self.data_dir = data_dir
        self.startup_timeout = startup_timeout
        self.attach_timeout = attach_timeout
        self.uri = ""
        self.port = 0
        # Times :meth:`supervise` found the database dead and started it again.
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def pid(self) -> int | None:
        """The database process's pid, when this handle runs it."""
        return self._process.pid if self._process is not None else None

    @property
    def owner(self) -> bool:
        """True when this handle started (and will stop) the database process."""
        return self._process is not None

    def start(self, *, own: bool = False) -> str:
        """Start the database, or attach to the one another process runs here.

        ``own``: never attach; wait (``attach_timeout``) for the other process (a
        ``trackd keys`` command) to let go, then start it here (``trackd serve``, which
        supervises what it runs).
        """
        if not is_installed():
            raise EmbeddedUnavailable(
                "the embedded database is not installed: pip install 'trackd[embedded]', "
                "or set MONGODB_URI to use a MongoDB server"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.data_dir / LOCK_FILE).open("a+")
        deadline = time.monotonic() + self.attach_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if own and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                lock.close()
                if own:
                    raise EmbeddedUnavailable(
                        f"another process holds {self.data_dir / LOCK_FILE} (a trackd "
                        f"command on the same data directory) and did not let go within "
                        f"{self.attach_timeout:.0f} s") from None
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
        """Connect to the database another process runs on this directory.

        Waits at most ``attach_timeout`` seconds (the owner may be restarting it), saying
        once, as a warning, what it waits for.
        """
        deadline = time.monotonic() + self.attach_timeout
        port = None
        warned = False
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                state = json.loads((self.data_dir / STATE_FILE).read_text())
                port = int(state["port"])
                uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
                if answers_ping(uri):
                    if warned:
                        log.warning("the embedded database answers again")
                    self.port = port
                    return uri
            if time.monotonic() >= deadline:
                break
            if not warned:
                warned = True
                log.warning(
                    "waiting up to %.0f s for the embedded database of %s (%s) to answer: "
                    "the process that runs it (such as trackd serve) is starting or "
                    "restarting it", self.attach_timeout, self.data_dir,
                    f"port {port}" if port else "port not yet recorded")
            time.sleep(0.2)
        raise EmbeddedUnavailable(
            f"waited {self.attach_timeout:.0f} s for the embedded database of {self.data_dir} "
            f"({f'port {port}' if port else 'no port recorded'}) to answer, in vain: another "
            f"process holds {LOCK_FILE} (trackd serve?) but its database is down; see "
            f"{self.data_dir / LOG_FILE}")

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        # Called from the thread that will outlive the child (PDEATHSIG follows the thread
        # that forked it): the main thread, or the event loop's.
        with (self.data_dir / LOG_FILE).open("ab") as log_file:
            return subprocess.Popen(
                [sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()),
                 sys.executable, "-m", "secantus", "--host", "127.0.0.1",
                 "--port", str(port), "--storage-path", str(self.data_dir / "db"),
                 "--log-level", "WARNING", *OPLOG_ARGS],
                cwd=self.data_dir,  # so it cannot pick up a stray ./secantusd.toml
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                # Its own session and process group: a terminal's Ctrl-C (SIGINT to the
                # foreground group) reaches trackd only, which drains, then stops it.
                start_new_session=True,
            )

    def _started(self, process: subprocess.Popen[bytes], port: int) -> str:
        self._process = process
        self.port = port
        self.uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        (self.data_dir / STATE_FILE).write_text(json.dumps({"pid": process.pid, "port": port}))
        return self.uri

    def _log_tail(self) -> str:
        return (self.data_dir / LOG_FILE).read_text(errors="replace")[-2000:]

    def _spawn(self) -> str:
        for _ in range(3):  # the free port can be taken between our probe and the bind
            port = stable_port()
            uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
            process = self._launch(port)
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline and process.poll() is None:
                if answers_ping(uri):
                    return self._started(process, port)
                time.sleep(0.1)
            if process.poll() is None:
                process.kill()
                process.wait()
        lines = [line for line in self._log_tail().splitlines() if line.strip()]
        raise EmbeddedUnavailable(
            f"the embedded database did not start (its log, {self.data_dir / LOG_FILE}, "
            f"ends: {lines[-1].strip() if lines else 'nothing'})")

    async def _restart(self) -> subprocess.Popen[bytes]:
        """Start the database again on the same port and data; raises if it won't come up."""
        port = self.port
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        process = self._launch(port)
        deadline = time.monotonic() + self.startup_timeout
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if await asyncio.to_thread(answers_ping, uri):
                    self._started(process, port)
                    return process
                await asyncio.sleep(0.1)
        finally:
            if self._process is not process and process.poll() is None:
                process.kill()  # timed out, or cancelled: leave nothing running
                process.wait()
                timed_out = True
            else:
                timed_out = False
        if timed_out:
            raise EmbeddedUnavailable(f"it did not answer within {self.startup_timeout:.0f} s")
        raise EmbeddedUnavailable(
            f"it exited at once ({describe_exit(process.returncode)}"
            f"{'; port ' + str(port) + ' is taken' if not can_bind(port) else ''})")

    async def supervise(self, on_death: Callable[[], object] | None = None) -> None:
        """Keep the database running until cancelled: reap it when it dies, log why, and
        start it again on the same port and data directory with backoff. ``on_death`` is
        called as soon as it is found dead (trackd stops sending it work at once).

        Only the handle that started the database supervises it (else this returns at
        once). Cancel this task before :meth:`stop`.
        """
        delay = RESTART_FIRST_DELAY
        while (process := self._process) is not None:
            started = time.monotonic()
            # A Popen child's exit is no awaitable event; poll() also reaps it (no zombie).
            while process.poll() is None:  # noqa: ASYNC110
                await asyncio.sleep(SUPERVISE_POLL_SECONDS)
            if self._process is not process:
                return  # stopped on purpose
            if time.monotonic() - started >= RESTART_STABLE_AFTER:
                delay = RESTART_FIRST_DELAY
            self.restarts += 1
            if on_death is not None:
                on_death()
            log.warning("embedded database (pid %d) died: %s; restarting it on port %d in "
                        "%.1f s (restart %d)", process.pid, describe_exit(process.returncode),
                        self.port, delay, self.restarts)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_MAX_DELAY)
                try:
                    process = await self._restart()
                except EmbeddedUnavailable as exc:
                    log.warning("embedded database did not restart: %s; trying again in "
                                "%.1f s; its log: %s", exc, delay, self.data_dir / LOG_FILE)
                    continue
                break
            log.warning("embedded database restarted (pid %d) on 127.0.0.1:%d",
                        process.pid, self.port)

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
