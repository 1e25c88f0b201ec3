"""``trackd serve`` starts like a real program: each start-up failure is one line naming
the problem and the flag or variable that fixes it, with a non-zero exit status and no
traceback; no development key before both ports are bound; ``--version``; ``--help``."""

from __future__ import annotations

import asyncio
import importlib.metadata
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.durability.harness import Trackd
from tests.durability.harness import trackd_command as trackd
from tests.processes import free_ports
from trackd.cli.settings import Settings
from trackd.storage import Store


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_version(tmp_path: Path) -> None:
    result = trackd("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"trackd {importlib.metadata.version('trackd')}\n"


def test_serve_help_lists_every_setting(tmp_path: Path) -> None:
    result = trackd("serve", "--help", cwd=tmp_path)
    assert result.returncode == 0
    for name in Settings.model_fields:
        variable = "MONGODB_URI" if name == "mongodb_uri" else f"TRACKD_{name.upper()}"
        assert variable in result.stdout, variable


@pytest.mark.parametrize(("env", "args", "line"), [
    ({"TRACKD_GRPC_PORT": "99999"}, [],
     "trackd: invalid TRACKD_GRPC_PORT (--grpc-port): Input should be less than or equal "
     "to 65535 (got '99999')"),
    ({}, ["--http-port", "eighty"],
     "trackd: invalid TRACKD_HTTP_PORT (--http-port): Input should be a valid integer, "
     "unable to parse string as an integer (got 'eighty')"),
    ({"TRACKD_MAX_QUEUED_EVENTS": "0"}, [],
     "trackd: invalid TRACKD_MAX_QUEUED_EVENTS: Input should be greater than 0 (got '0')"),
    ({"TRACKD_LOG_LEVEL": "loud"}, [],
     "trackd: invalid TRACKD_LOG_LEVEL (--log-level): Value error, must be one of DEBUG, "
     "INFO, WARNING, ERROR, CRITICAL (got 'loud')"),
    ({"TRACKD_RATE_LIMIT_CUEFLOW": "lots"}, [],
     "trackd: invalid TRACKD_RATE_LIMIT_CUEFLOW: Value error, rate limit 'lots' is not of "
     "the form REQUESTS/SECONDS (got 'lots')"),
    ({"MONGODB_URI": "mongo://user:secret@db"}, [],
     "trackd: MONGODB_URI (--mongodb-uri) is not a MongoDB connection string PyMongo "
     "accepts: Invalid URI scheme: URI must begin with 'mongodb://' or 'mongodb+srv://'"),
])
def test_invalid_setting_is_one_line_exit_2(tmp_path: Path, env: dict[str, str],
                                            args: list[str], line: str) -> None:
    result = trackd("serve", *args, cwd=tmp_path, **env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [line]
    assert result.stdout == ""
    assert "secret" not in result.stderr


def test_unreachable_mongodb_is_one_line_after_the_timeout(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    result = trackd("serve", cwd=tmp_path,
                    MONGODB_URI=f"mongodb://user:secret@127.0.0.1:{port}/?directConnection=true",
                    TRACKD_MONGODB_TIMEOUT_SECONDS="1")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"trackd: MongoDB at 127.0.0.1:{port} did not answer within 1 s: "
        "check MONGODB_URI (--mongodb-uri), or wait longer "
        "with TRACKD_MONGODB_TIMEOUT_SECONDS"]


@pytest.mark.parametrize(("which", "flag", "variable", "what"), [
    ("grpc", "--grpc-port", "TRACKD_GRPC_PORT", "gRPC"),
    ("http", "--http-port", "TRACKD_HTTP_PORT", "the REST gateway"),
])
async def test_port_in_use_is_one_line_and_mints_no_key(
        tmp_path: Path, store: Store, mongodb_uri: str, listening: int,
        which: str, flag: str, variable: str, what: str) -> None:
    free = free_ports(1)[0]
    ports = {"grpc": (listening, free), "http": (free, listening)}[which]
    result = await asyncio.to_thread(
        trackd, "serve", "--grpc-port", str(ports[0]), "--http-port", str(ports[1]),
        cwd=tmp_path, MONGODB_URI=mongodb_uri, TRACKD_DATABASE=store.db.name)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"trackd: cannot listen for {what} on 127.0.0.1:{listening}: address already in use; "
        f"choose another port with {flag} or {variable}, or another address with --host or "
        "TRACKD_HOST"]
    assert result.stdout == ""  # no development key printed...
    assert await store.keys.list("default") == []  # ...nor made


async def test_restart_with_a_key_says_how_to_make_another(
        tmp_path: Path, store: Store, mongodb_uri: str) -> None:
    first = Trackd(tmp_path, mongodb_uri, TRACKD_DATABASE=store.db.name)
    try:
        await first.start()
        assert "Created a development API key for project 'default'" in \
            first.out_path.read_text()
        first.signal(signal.SIGTERM)
        assert await first.exit_status() == 0
    finally:
        first.close()
    again = Trackd(tmp_path, mongodb_uri, TRACKD_DATABASE=store.db.name)
    try:
        await again.start()
        assert again.out_path.read_text() == ""
        assert ("project 'default' already has an API key (its secret was shown when it was "
                "made); make another with: trackd keys create --project default"
                ) in again.stderr
    finally:
        again.close()
    assert len(await store.keys.list("default")) == 1
