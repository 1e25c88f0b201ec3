"""The embedded database's launcher (trackd/storage/embedded.py) on its own: the port it picks,
starting the real SecantusDB child and attaching a second handle to it, a start that
fails, and the data directory's lock.

What ``trackd serve`` does with it (supervising, restarting, a command attaching while it
restarts, giving up on an attach) is tests/durability/test_supervision.py's.
"""

from __future__ import annotations

import fcntl
import json
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.durability.harness import alive
from tests.processes import free_ports
from trackd.storage.child_process import answers_ping, describe_exit, stable_port
from trackd.storage.embedded import EmbeddedDatabase, EmbeddedUnavailable, is_installed


def ephemeral_low() -> int:
    return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def test_the_port_is_below_the_ephemeral_range_and_free() -> None:
    low = ephemeral_low()
    if low <= 11_000:
        pytest.skip(f"the ephemeral range starts at {low}: any free port is taken instead")
    for _ in range(20):
        port = stable_port()
        assert 10_000 <= port < low  # so no bind(0) and no outgoing connection takes it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))  # free when picked


@pytest.mark.parametrize(("returncode", "said"), [
    (0, "exit code 0"),
    (3, "exit code 3"),
    (-signal.SIGKILL, "killed by signal SIGKILL"),
    (-signal.SIGTERM, "killed by signal SIGTERM"),
    (-99, "killed by signal 99"),
])
def test_how_a_child_ended_in_words(returncode: int, said: str) -> None:
    assert describe_exit(returncode) == said


def test_nothing_answers_ping_on_a_port_nobody_listens_on() -> None:
    (port,) = free_ports(1)
    assert not answers_ping(f"mongodb://127.0.0.1:{port}/?directConnection=true", 100)


def test_start_attach_and_stop(tmp_path: Path) -> None:
    with EmbeddedDatabase(tmp_path) as owner:
        assert owner.owner
        pid = owner.pid
        assert pid is not None
        assert alive(pid)
        assert owner.uri == f"mongodb://127.0.0.1:{owner.port}/?directConnection=true"
        assert json.loads((tmp_path / "embedded.json").read_text()) == {
            "pid": pid, "port": owner.port}
        assert answers_ping(owner.uri)

        # A second handle on the directory (a trackd command beside trackd serve)
        # connects to the same database, and stopping it stops nothing.
        other = EmbeddedDatabase(tmp_path)
        assert other.start() == owner.uri
        assert (other.owner, other.pid, other.port) == (False, None, owner.port)
        other.stop()
        assert answers_ping(owner.uri)
    assert owner.pid is None
    assert not (tmp_path / "embedded.json").exists()
    assert not answers_ping(owner.uri)
    assert not alive(pid)
    # The lock is free again: the next start here owns the database.
    with EmbeddedDatabase(tmp_path) as again:
        assert again.owner


def test_a_start_that_fails_says_what_the_log_ends_with(tmp_path: Path) -> None:
    (tmp_path / "db").write_text("not a directory")  # where SecantusDB keeps its files
    database = EmbeddedDatabase(tmp_path, startup_timeout=30)
    with pytest.raises(EmbeddedUnavailable) as caught:
        database.start()
    lines = [line for line in (tmp_path / "secantus.log").read_text().splitlines()
             if line.strip()]
    assert str(caught.value) == (
        f"the embedded database did not start (its log, {tmp_path / 'secantus.log'}, "
        f"ends: {lines[-1].strip()})")
    assert "FileExistsError" in lines[-1]
    assert (database.owner, database.uri) == (False, "")
    assert not (tmp_path / "embedded.json").exists()
    with (tmp_path / "embedded.lock").open("a+") as lock:  # and it let go of the lock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_serve_waits_for_a_command_to_let_go_then_says_who_holds_the_lock(
        tmp_path: Path) -> None:
    with (tmp_path / "embedded.lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        database = EmbeddedDatabase(tmp_path, attach_timeout=1)
        with pytest.raises(EmbeddedUnavailable) as caught:
            database.start(own=True)
    assert str(caught.value) == (
        f"another process holds {tmp_path / 'embedded.lock'} (a trackd command on the same "
        "data directory) and did not let go within 1 s")
    assert not database.owner


def test_not_installed_says_how_to_install_it_and_touches_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_installed()
    monkeypatch.setitem(sys.modules, "secantus", None)  # as if the import were impossible
    assert not is_installed()
    with pytest.raises(EmbeddedUnavailable) as caught:
        EmbeddedDatabase(tmp_path / "data").start()
    assert str(caught.value) == (
        "the embedded database is not installed: pip install 'trackd[embedded]', or set "
        "MONGODB_URI to use a MongoDB server")
    assert not (tmp_path / "data").exists()
