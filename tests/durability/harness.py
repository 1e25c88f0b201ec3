"""What the durability tests drive: a database process, a trackd process, and clients.

- :class:`Database` runs SecantusDB on a fixed port and data directory, so a test can
  SIGKILL it and start it again where trackd expects it, or SIGSTOP/SIGCONT it.
- :class:`Trackd` runs ``trackd serve`` on free ports, on ``--mongodb-uri`` or on an
  embedded database of its own (``--data-dir``); the one way every test starts it.
- :class:`Load` keeps N requests in flight (REST, optionally gRPC), each with new unique
  event ids, and records every request's :class:`Outcome`.
- :func:`stored_events` reads back what the database holds, for counting.

Times are recorded (``time.monotonic()``) only to say which requests were sent before or
after a fault; no test asserts how long anything took. Every wait is bounded, and every
process is killed by its ``close()``, which tests call in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import aiohttp
import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2, status_pb2
from pymongo import MongoClient

from tests.processes import free_ports
from trackd.storage.child_process import answers_ping
from trackd.v1 import tracking_pb2, tracking_pb2_grpc

TRACKD = Path(sys.executable).parent / "trackd"
READY_LINE = "trackd is serving"
STOPPING_LINE = "stopping: no new requests"
DEV_KEY_BANNER = "Created a development API key for project 'default'"
PROJECT = "durability"
DATABASE = "trackd"

# Generous bounds for a loaded CI machine. They only turn a hang into a failure; no test
# asserts that anything was fast.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 15.0  # a request not answered within this is a failure (or a retry)
COMMAND_TIMEOUT = 120.0
# What a database left behind by a killed trackd gets between SIGTERM and SIGKILL.
STOP_GRACE = 10.0

ACKED = ("202", "grpc:OK")
UNAVAILABLE = ("503", "grpc:UNAVAILABLE")
TIMEOUT = "timeout"
DISCONNECTED = "disconnected"

# Runs in the child between fork and exec of the real program: the child dies with the
# test process (PR_SET_PDEATHSIG), so a test runner killed outright leaves nothing behind.
_GUARD = """
import ctypes, os, signal, sys
ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
if os.getppid() != int(sys.argv[1]):
    sys.exit(70)
os.execv(sys.argv[2], sys.argv[2:])
"""


def guarded(argv: Sequence[str]) -> list[str]:
    """``argv`` run so that it is killed when this (main-thread) test process dies."""
    return [sys.executable, "-c", _GUARD, str(os.getpid()), *argv]


def clean_env(**settings: str) -> dict[str, str]:
    """The environment minus every setting trackd reads, plus ``settings``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRACKD_") and k != "MONGODB_URI"}
    return {**env, **settings}


def fixed_port() -> int:
    """A free port below the kernel's ephemeral range, for a process that restarts on it.

    The kernel never hands such a port to ``bind(0)`` or to an outgoing connection, so
    while the database is down nothing else on this machine takes its port (short of
    another test picking the same random number at the same moment).
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = range(10_000, low) if low > 11_000 else range(0)
    for _ in range(200):
        if not candidates:
            break
        port = random.choice(candidates)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return free_ports(1)[0]


def process_state(pid: int) -> str:
    """The one-letter state in /proc/<pid>/stat (``T`` when stopped), or '' if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def rss_bytes(pid: int) -> int:
    """The process's resident set size, from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    return process_state(pid) not in ("", "Z")


def database_processes(data_dir: Path) -> list[int]:
    """The SecantusDB processes keeping their data in ``data_dir`` (trackd's embedded
    database, ``data_dir / "db"``), found by their command lines in /proc."""
    storage = {str(data_dir / "db"), str((data_dir / "db").resolve())}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = [arg.decode(errors="replace")
                    for arg in (entry / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue  # gone meanwhile
        if "secantus" in argv and "--storage-path" in argv[:-1] \
                and argv[argv.index("--storage-path") + 1] in storage:
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def stop_processes(pids: Sequence[int], grace: float = STOP_GRACE) -> None:
    """SIGTERM ``pids`` (processes that need not be this one's children), give them
    ``grace`` seconds, SIGKILL what is left, and wait until every one is gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


async def until(condition: Callable[[], bool], what: str, bound: float = START_TIMEOUT,
                detail: Callable[[], str] = lambda: "") -> None:
    """Wait until ``condition()`` holds; fail the test saying ``what`` after ``bound`` s."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up waiting for {what}\n{detail()}")
        await asyncio.sleep(0.05)


# --- the database ----------------------------------------------------------------------------


class Database:
    """SecantusDB as its own process, on a port and directory that survive restarts."""

    def __init__(self, root: Path, args: Sequence[str] = ()) -> None:
        self.root = root
        self.args = tuple(args)  # more of SecantusDB's options (a short oplog)
        self.path = root / "db"
        self.log_path = root / "secantus.log"
        self.port = fixed_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the database is not running"
        return self.proc.pid

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Spawned from the test's (main) thread: the child's PDEATHSIG follows that thread.
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                guarded([sys.executable, "-m", "secantus", "--host", "127.0.0.1",
                         "--port", str(self.port), "--storage-path", str(self.path),
                         "--log-level", "WARNING", *self.args]),
                cwd=self.root, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return self.proc

    async def start(self) -> None:
        """Start it (again) on the same port and data, and wait until it answers ping."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._spawn()
            assert self.proc is not None
            while time.monotonic() < deadline and self.proc.poll() is None:
                if await asyncio.to_thread(answers_ping, self.uri):
                    return
                await asyncio.sleep(0.1)
            # It exited (its port can be briefly unavailable after a kill): try again.
            await asyncio.sleep(0.5)
        self.close()
        pytest.fail(f"the database did not start on port {self.port}; its log ends:\n"
                    f"{tail(self.log_path)}")

    def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(STOP_TIMEOUT)

    async def pause(self) -> None:
        """SIGSTOP: its connections stay open, nothing it is asked ever gets an answer."""
        os.kill(self.pid, signal.SIGSTOP)
        await until(lambda: process_state(self.pid) in ("T", "t"), "the database to stop",
                    STOP_TIMEOUT)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()  # a stopped process dies of SIGKILL too
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)

    def client(self) -> MongoClient[dict[str, Any]]:
        return MongoClient(self.uri, serverSelectionTimeoutMS=30_000, tz_aware=True)


def stored_events(database: Database) -> list[dict[str, Any]]:
    """Every event of the test project the database holds: event id and ``properties.n``."""
    with database.client() as client:
        return list(client[DATABASE]["events"].find(
            {"project_id": PROJECT}, {"_id": 0, "event_id": 1, "properties.n": 1}))


def trackd_command(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run ``trackd ARGS`` to completion with only ``settings`` of trackd's own in its
    environment (killed if it outlives the bound)."""
    return subprocess.run([str(TRACKD), *args], cwd=cwd, env=clean_env(**settings), text=True,
                          capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=COMMAND_TIMEOUT, check=False)


def dev_key(stdout: str) -> str:
    """The key ``trackd serve`` prints on the line after its first-start banner."""
    lines = stdout.splitlines()
    banner = [i for i, line in enumerate(lines) if DEV_KEY_BANNER in line]
    assert banner, f"no development key banner in stdout:\n{stdout}"
    key = lines[banner[0] + 1].strip()
    assert key.startswith("trk_"), lines
    return key


async def create_key(database: Database) -> str:
    """``trackd keys create`` for the test project; the printed secret."""
    result = await asyncio.to_thread(
        trackd_command, "keys", "create", "--project", PROJECT, "--mongodb-uri", database.uri,
        cwd=database.root)
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("trk_"), result.stdout
    return secret


# --- trackd ----------------------------------------------------------------------------------


class Trackd:
    """``trackd serve`` against ``mongodb_uri``, on free ports; settings by environment
    (and ``flags``, given after the ports).

    With ``mongodb_uri`` empty it runs its own embedded database in ``root / "data"``
    (``data_dir``), supervised by trackd itself. :meth:`close` SIGKILLs trackd, then
    stops that database too if it outlived trackd: it gets SIGTERM when trackd dies, but
    one caught starting or restarting can ignore it, and would run on with no parent.
    """

    def __init__(self, root: Path, mongodb_uri: str, *, flags: Sequence[str] = (),
                 **settings: str) -> None:
        self.root = root
        self.mongodb_uri = mongodb_uri
        self.data_dir = root / "data"
        self.flags = tuple(flags)
        self.settings = {"TRACKD_LOG_LEVEL": "INFO", **settings}
        name = f"trackd-{uuid.uuid4().hex[:8]}"
        self.out_path = root / f"{name}.out"
        self.err_path = root / f"{name}.err"
        self._out: IO[bytes] = self.out_path.open("wb")
        self._err: IO[bytes] = self.err_path.open("wb")
        self.proc: subprocess.Popen[bytes] | None = None
        self.grpc_port = self.http_port = 0

    def _spawn(self) -> None:
        self.grpc_port, self.http_port = free_ports(2)
        database = ["--mongodb-uri", self.mongodb_uri] if self.mongodb_uri else \
            ["--data-dir", str(self.data_dir)]
        self.proc = subprocess.Popen(
            guarded([str(TRACKD), "serve", *database,
                     "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
                 *self.flags]),
            cwd=self.root, env=clean_env(**self.settings), stdin=subprocess.DEVNULL,
            stdout=self._out, stderr=self._err)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def output(self) -> str:
        return f"trackd stdout:\n{tail(self.out_path)}\ntrackd stderr:\n{tail(self.err_path)}"

    async def start(self) -> None:
        """Start it and wait until it serves; a port taken meanwhile means new ports."""
        deadline = time.monotonic() + START_TIMEOUT
        for _ in range(3):
            self._spawn()
            assert self.proc is not None
            while time.monotonic() < deadline and self.proc.poll() is None:
                if READY_LINE in self.stderr:
                    return
                await asyncio.sleep(0.05)
            lowered = self.stderr.lower()
            if self.proc.poll() is None or not ("bind" in lowered or "in use" in lowered):
                break
        self.close()
        pytest.fail(f"trackd did not start serving\n{self.output()}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def stop(self) -> int:
        """SIGTERM, as a process manager stops it; its exit status (bounded wait)."""
        self.signal(signal.SIGTERM)
        return await self.exit_status()

    async def exit_status(self) -> int:
        """Wait (bounded) for the process to end; its exit status."""
        assert self.proc is not None
        proc = self.proc
        await until(lambda: proc.poll() is not None, "trackd to exit", STOP_TIMEOUT,
                    self.output)
        return proc.wait()

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def embedded_state(self) -> dict[str, int]:
        """The embedded database's recorded pid and port (``embedded.json``)."""
        state: dict[str, int] = json.loads((self.data_dir / "embedded.json").read_text())
        return state

    @property
    def embedded_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.embedded_state()['port']}/?directConnection=true"

    def close(self) -> None:
        proc, self.proc = self.proc, None
        try:
            # ``--workers``' workers end with their supervisor (a bounded drain); a test
            # that ends the run early must not leave them behind meanwhile.
            workers = children(proc.pid) if proc is not None else []
            if proc is not None and proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(STOP_TIMEOUT)
            stop_processes(workers)
            if not self.mongodb_uri:
                stop_processes(database_processes(self.data_dir))
        finally:
            self._out.close()
            self._err.close()


# The ``start_trackd`` fixture: ``await start_trackd(TRACKD_SETTING="value", ...)``.
StartTrackd = Callable[..., Awaitable[Trackd]]


# --- clients ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One request: the event ids it carried, when it went and came back, and how.

    ``status`` is the HTTP status (``"202"``, ``"503"``...), ``"grpc:<CODE>"`` for a gRPC
    call, :data:`TIMEOUT` when no answer came within the client's timeout, or
    :data:`DISCONNECTED` when the connection was refused or dropped. ``retry_after`` is
    the ``Retry-After`` header, or the delay of a gRPC ``RetryInfo``.
    """

    ids: tuple[str, ...]
    sent: float
    answered: float
    status: str
    retry_after: str | None = None
    detail: str = ""

    @property
    def acked(self) -> bool:
        return self.status in ACKED

    @property
    def unavailable(self) -> bool:
        """The retryable "not stored, come back later" answer, with its retry hint."""
        return self.status in UNAVAILABLE and self.retry_after is not None


def event(n: int, event_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"external_user_id": f"usr_{n % 97}", "name": "feature_used",
                            "properties": {"feature": "export", "n": n}}
    if event_id is not None:
        body["event_id"] = event_id
    return body


async def post(session: aiohttp.ClientSession, url: str, key: str, path: str, body: Any,
               ids: Sequence[str], idempotency_key: str | None = None) -> Outcome:
    """One REST request, bounded by the session's timeout; never raises for a failure."""
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    sent = time.monotonic()
    try:
        async with session.post(f"{url}{path}", json=body, headers=headers) as response:
            text = await response.text()
            return Outcome(tuple(ids), sent, time.monotonic(), str(response.status),
                           response.headers.get("Retry-After"), text)
    except TimeoutError as exc:
        return Outcome(tuple(ids), sent, time.monotonic(), TIMEOUT, detail=repr(exc))
    except aiohttp.ClientError as exc:
        return Outcome(tuple(ids), sent, time.monotonic(), DISCONNECTED, detail=repr(exc))


def retry_delay(error: grpc.aio.AioRpcError) -> str | None:
    """The RetryInfo delay (seconds) in a gRPC error's status details, if any."""
    for name, value in error.trailing_metadata() or ():
        if name != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return str(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


async def track(stub: tracking_pb2_grpc.TrackingServiceStub, key: str, n: int,
                event_id: str) -> Outcome:
    """One gRPC TrackEvent, bounded by a deadline; never raises for a failure."""
    properties = struct_pb2.Struct()
    properties.update({"feature": "export", "n": n})
    request = tracking_pb2.TrackEventRequest(event=tracking_pb2.Event(
        name="feature_used", external_user_id=f"usr_{n % 97}", event_id=event_id,
        properties=properties))
    sent = time.monotonic()
    try:
        await stub.TrackEvent(request, metadata=[("authorization", f"Bearer {key}")],
                              timeout=REQUEST_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        status = TIMEOUT if code == grpc.StatusCode.DEADLINE_EXCEEDED else f"grpc:{code.name}"
        return Outcome((event_id,), sent, time.monotonic(), status, retry_delay(exc),
                       exc.details() or "")
    return Outcome((event_id,), sent, time.monotonic(), "grpc:OK")


def summary(outcomes: Sequence[Outcome]) -> str:
    """How many requests ended how, and the first few that were not acknowledged."""
    statuses: dict[str, int] = {}
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    failed = [o for o in outcomes if not o.acked][:5]
    return f"outcomes by status: {json.dumps(statuses, sort_keys=True)}; first failures: {failed}"


class Load:
    """Concurrent clients, each keeping one request in flight with new unique event ids.

    ``workers`` REST clients POST to ``/api/v1/events`` (``batch`` 1) or
    ``/api/v1/events/batch``; ``grpc_workers`` call TrackEvent. After a failed request a
    client pauses ``pause_after_failure`` seconds (it does not retry: its next request
    carries new events). With ``until_disconnected`` a client stops at its first refused
    or dropped connection: the server is gone.
    """

    def __init__(self, trackd: Trackd, key: str, *, workers: int = 16, batch: int = 1,
                 grpc_workers: int = 0, pause_after_failure: float = 0.05,
                 until_disconnected: bool = False) -> None:
        self.trackd = trackd
        self.key = key
        self.workers = workers
        self.batch = batch
        self.grpc_workers = grpc_workers
        self.pause_after_failure = pause_after_failure
        self.until_disconnected = until_disconnected
        self.outcomes: list[Outcome] = []
        self.in_flight: dict[int, float] = {}  # worker -> when its current request went
        self._prefix = uuid.uuid4().hex[:10]
        self._count = 0
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._channel: grpc.aio.Channel | None = None

    def _next(self) -> tuple[int, str]:
        self._count += 1
        return self._count, f"evt-{self._prefix}-{self._count}"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        if self.grpc_workers:
            self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.trackd.grpc_port}")
        loop = asyncio.get_running_loop()
        for worker in range(self.workers):
            self._tasks.append(loop.create_task(self._rest(worker)))
        for worker in range(self.workers, self.workers + self.grpc_workers):
            self._tasks.append(loop.create_task(self._grpc(worker)))
        return self

    async def _rest(self, worker: int) -> None:
        assert self._session is not None
        while not self._stopping.is_set():
            numbered = [self._next() for _ in range(self.batch)]
            ids = [event_id for _, event_id in numbered]
            events = [event(n, event_id) for n, event_id in numbered]
            path, body = ("/api/v1/events", events[0]) if self.batch == 1 else \
                ("/api/v1/events/batch", {"events": events})
            self.in_flight[worker] = time.monotonic()
            outcome = await post(self._session, self.trackd.url, self.key, path, body, ids)
            del self.in_flight[worker]
            self.outcomes.append(outcome)
            if outcome.status == DISCONNECTED and self.until_disconnected:
                return
            if not outcome.acked:
                await asyncio.sleep(self.pause_after_failure)

    async def _grpc(self, worker: int) -> None:
        assert self._channel is not None
        stub = tracking_pb2_grpc.TrackingServiceStub(self._channel)
        while not self._stopping.is_set():
            n, event_id = self._next()
            self.in_flight[worker] = time.monotonic()
            outcome = await track(stub, self.key, n, event_id)
            del self.in_flight[worker]
            self.outcomes.append(outcome)
            if not outcome.acked:
                await asyncio.sleep(self.pause_after_failure)

    @property
    def finished(self) -> bool:
        return all(task.done() for task in self._tasks)

    def acked_ids(self) -> list[str]:
        return [event_id for o in self.outcomes if o.acked for event_id in o.ids]

    def sent_ids(self) -> list[str]:
        return [event_id for o in self.outcomes for event_id in o.ids]

    def count(self, predicate: Callable[[Outcome], bool]) -> int:
        return sum(1 for o in self.outcomes if predicate(o))

    def summary(self) -> str:
        return summary(self.outcomes)

    async def stop(self) -> None:
        """Let every client finish its current request (bounded), then stop."""
        self._stopping.set()
        await until(lambda: self.finished, "the clients to finish",
                    REQUEST_TIMEOUT + STOP_TIMEOUT, self.summary)
        for task in self._tasks:
            task.result()  # a client that crashed is a broken test

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._channel is not None:
            await self._channel.close()


# --- assertions ------------------------------------------------------------------------------


def assert_unavailable(outcomes: Sequence[Outcome]) -> None:
    """Each is 503 + Retry-After in VibeFollow's envelope, or UNAVAILABLE + RetryInfo."""
    wrong = [o for o in outcomes if not o.unavailable]
    assert wrong == [], f"{len(wrong)} not 503/UNAVAILABLE with a retry hint: {wrong[:5]}"
    for o in outcomes:
        assert float(o.retry_after or 0) >= 1, o
        if o.status == "503":
            assert '"code":"service_unavailable"' in o.detail, o


def assert_acked_stored_once(acked: Sequence[str], stored: Sequence[str]) -> None:
    """Every acknowledged event id is stored, and no event id is stored twice."""
    counts = Counter(stored)
    missing = [event_id for event_id in acked if counts[event_id] == 0]
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged events were lost"
    duplicated = {event_id: n for event_id, n in counts.items() if n > 1}
    assert duplicated == {}, f"{len(duplicated)} events stored more than once"
