"""Processes and ports: free ports, readiness checks, child processes, CPU time from /proc.

CPU time is ``utime + stime`` of ``/proc/<pid>/stat`` (every thread of the process, live
or exited), summed over a process and its descendants, in seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) with this checkout first on PYTHONPATH.

    So every child, ``trackd serve`` included, runs the code of the checkout the bench
    lives in, even when the virtualenv's editable install points at another one.
    """
    env = dict(os.environ if env is None else env)
    paths = [str(REPO), str(REPO / "proto")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class NotReady(Exception):
    """A port, server or database the benchmark needs is not there; exit status 2."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = (entry / "stat").read_text()
            ppid = int(raw[raw.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds of ``pids`` and their descendants; processes that are gone count 0."""
    total = 0.0
    for root in pids:
        for pid in descendants(root):
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
    return total


class Child:
    """A child process with its output in a log file, stopped by its own pid only."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, *,
                 env: Mapping[str, str] | None = None, stdout_pipe: bool = False) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process: subprocess.Popen[bytes] = subprocess.Popen(
            list(argv), cwd=REPO, env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def wait_for_ports(child: Child, ports: Sequence[int], timeout: float = 30.0) -> None:
    """Until every port accepts connections; NotReady if the child dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise NotReady(f"{child.name} exited with status {child.process.returncode} "
                           f"before serving; its log ends:\n{child.log_tail()}")
        if all(port_accepts(port) for port in ports):
            return
        time.sleep(0.05)
    raise NotReady(f"{child.name} did not open ports {list(ports)} within {timeout:.0f} s; "
                   f"its log ends:\n{child.log_tail()}")
