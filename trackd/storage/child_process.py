"""A child process of trackd's on a loopback port, as the embedded database runs.

A port nothing else takes while the child is down (:func:`stable_port`), a first program
that makes the child die with trackd (:data:`DIE_WITH_PARENT`), its exit said in words
(:func:`describe_exit`, also for ``trackd serve --workers``' workers) and whether a
MongoDB-compatible server answers (:func:`answers_ping`). :mod:`trackd.storage.embedded` starts
and supervises SecantusDB with these.

May import: the standard library and pymongo.
"""

from __future__ import annotations

import random
import signal
import socket
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def stable_port() -> int:
    """A free loopback port below the kernel's ephemeral range (else any free port).

    The kernel never hands such a port to ``bind(0)`` or to an outgoing connection, so
    while the database is down and being restarted nothing else takes its port.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low > 11_000:
        for _ in range(100):
            port = random.randrange(10_000, low)
            if can_bind(port):
                return port
    return _free_port()


def describe_exit(returncode: int) -> str:
    """``exit code 3`` or ``killed by signal SIGKILL``, from a Popen return code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"killed by signal {name}"
    return f"exit code {returncode}"


# Runs as the child's first code, then execs the database: if trackd is killed outright,
# the database gets SIGTERM (PR_SET_PDEATHSIG) and shuts down cleanly instead of lingering
# with the files locked. Done after exec, not in a preexec_fn: Python code between fork
# and exec in a process with threads (grpc's) can deadlock or crash.
DIE_WITH_PARENT = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(70)  # trackd died before the prctl: nobody to serve
os.execv(sys.argv[2], sys.argv[2:])
"""


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
