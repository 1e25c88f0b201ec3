"""The ``trackd`` command, run as a real process: ``serve`` and ``keys create|revoke|list``.

Every test runs the installed console script in a subprocess with its own ``--data-dir``
(so its own embedded database) and its own free ports, through the durability harness
(tests/durability/harness.py: :class:`Trackd`, ``trackd_command``). Nothing is mocked;
every process is bounded by a timeout and stopped in a ``finally``. What SIGTERM under
load does is tests/durability/test_trackd_faults.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.durability.harness import (
    COMMAND_TIMEOUT,
    DEV_KEY_BANNER,
    Trackd,
    clean_env,
    dev_key,
)
from tests.durability.harness import trackd_command as trackd
from tests.processes import free_ports

ACCEPTED = {"data": {"accepted": True}}
SEED_EVENT: dict[str, Any] = {
    "external_user_id": "usr_42",
    "name": "user_signed_up",
    "properties": {"plan": "trial", "source": "organic"},
}
# A logging line (``%(asctime)s %(levelname)s ...``) at a level that is not an error.
INFO_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO) ")


def _informational(line: str) -> bool:
    """A log line (text, or JSON as when stderr is no terminal) below WARNING."""
    if INFO_LOG_LINE.match(line):
        return True
    try:
        parsed = json.loads(line)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("level") in ("DEBUG", "INFO")


def error_lines(stderr: str) -> list[str]:
    """What stderr says beyond informational log lines."""
    return [line for line in stderr.splitlines() if line.strip() and not _informational(line)]


@contextlib.asynccontextmanager
async def serving(root: Path) -> AsyncIterator[Trackd]:
    """``trackd serve`` on its embedded database in ``root / "data"``, ready for requests,
    killed afterwards (with that database)."""
    serve = Trackd(root, "")
    try:
        await serve.start()
        yield serve
    finally:
        serve.close()


def post_event(url: str, key: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST /api/v1/events; the status and the parsed JSON body."""
    request = urllib.request.Request(
        f"{url}/api/v1/events", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@contextlib.contextmanager
def running_database(data_dir: Path) -> Iterator[MongoClient[dict[str, Any]]]:
    """A client on the embedded database a running ``trackd serve`` keeps in ``data_dir``."""
    state = json.loads((data_dir / "embedded.json").read_text())
    client: MongoClient[dict[str, Any]] = MongoClient(
        f"mongodb://127.0.0.1:{int(state['port'])}/?directConnection=true",
        serverSelectionTimeoutMS=10_000, tz_aware=True)
    try:
        yield client
    finally:
        client.close()


def created_key(result: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """(key id, secret) from the output of ``trackd keys create``."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    secret = lines[-1]
    assert secret.startswith("trk_"), result.stdout
    key_ids = [m.group(1) for line in lines if (m := re.match(r"key id:\s+(\S+)$", line))]
    assert len(key_ids) == 1, result.stdout
    return key_ids[0], secret


def key_line(listing: str, key_id: str) -> str:
    lines = [line for line in listing.splitlines() if line.split()[:1] == [key_id]]
    assert len(lines) == 1, listing
    return lines[0]


# --- serve: first start, the development key, restart --------------------------------------


async def test_first_serve_prints_a_working_dev_key_and_restart_keeps_key_and_data(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    async with serving(tmp_path) as first:
        key = dev_key(first.stdout)
        assert str(first.grpc_port) in first.stderr
        assert str(first.http_port) in first.stderr
        assert post_event(first.url, key, SEED_EVENT) == (202, ACCEPTED)
        assert await first.stop() == 0

    async with serving(tmp_path) as second:
        assert DEV_KEY_BANNER not in second.stdout
        assert "trk_" not in second.stdout
        with running_database(data_dir) as client:
            stored = list(client["trackd"]["events"].find(
                {"project_id": "default"}, {"_id": 0, "name": 1, "user_id": 1, "properties": 1}))
        assert stored == [{"name": "user_signed_up", "user_id": "usr_42",
                           "properties": {"plan": "trial", "source": "organic"}}]
        # The key printed on the first start is still the project's key.
        assert post_event(second.url, key, SEED_EVENT) == (202, ACCEPTED)
        assert await second.stop() == 0


# --- keys, with no server running ------------------------------------------------------------


def test_keys_create_list_revoke_without_a_server(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    key_id, secret = created_key(
        trackd("keys", "create", "--project", "acme", "--data-dir", data_dir, cwd=tmp_path))

    listing = trackd("keys", "list", "--data-dir", data_dir, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    line = key_line(listing.stdout, key_id)
    assert line.split()[1] == "acme"
    assert line.endswith("active")
    assert secret not in listing.stdout + listing.stderr
    assert secret.removeprefix("trk_") not in listing.stdout + listing.stderr

    revoked = trackd("keys", "revoke", key_id, "--data-dir", data_dir, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked {key_id}"

    again = trackd("keys", "revoke", key_id, "--data-dir", data_dir, cwd=tmp_path)
    assert again.returncode == 2
    assert again.stdout == ""
    assert error_lines(again.stderr) == [f"trackd: no active key with id {key_id}"]

    listing = trackd("keys", "list", "--data-dir", data_dir, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    line = key_line(listing.stdout, key_id)
    assert line.split()[1] == "acme"
    assert "revoked" in line.split("track:events", 1)[1]
    assert secret not in listing.stdout + listing.stderr


def test_keys_create_rejects_an_unknown_scope(tmp_path: Path) -> None:
    result = trackd("keys", "create", "--project", "acme", "--scope", "nope",
                    "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice: 'nope'" in result.stderr
    assert "trk_" not in result.stdout
    assert not (tmp_path / "data").exists()  # rejected before touching any database


# --- keys, beside a running server -----------------------------------------------------------


async def test_keys_beside_a_running_server_take_effect_on_the_gateway(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with serving(tmp_path) as serve:
        state = (data_dir / "embedded.json").read_text()
        key_id, secret = created_key(trackd(
            "keys", "create", "--project", "acme", "--data-dir", str(data_dir), cwd=tmp_path))
        # It used the server's database rather than starting another one.
        assert (data_dir / "embedded.json").read_text() == state

        assert post_event(serve.url, secret, SEED_EVENT) == (202, ACCEPTED)
        with running_database(data_dir) as client:
            assert client["trackd"]["events"].count_documents(
                {"project_id": "acme", "user_id": "usr_42"}) == 1

        revoked = trackd("keys", "revoke", key_id, "--data-dir", str(data_dir), cwd=tmp_path)
        assert revoked.returncode == 0, revoked.stderr

        # Revocation reaches the gateway within the auth cache time (5 s by default).
        deadline = time.monotonic() + 15
        status, body = post_event(serve.url, secret, SEED_EVENT)
        while status != 401 and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            status, body = post_event(serve.url, secret, SEED_EVENT)
        assert status == 401, body
        assert body["errors"][0]["code"] == "unauthorized"
        assert await serve.stop() == 0, serve.stderr


# --- no database ----------------------------------------------------------------------------

# Two ways the embedded database can be missing from the interpreter: an import that is
# blocked, and a module without an import spec (find_spec raises ValueError).
NOT_INSTALLED = {
    "blocked": "sys.modules['secantus'] = None",
    "no spec": "import types; sys.modules['secantus'] = types.ModuleType('secantus')",
}


@pytest.mark.parametrize("hide", NOT_INSTALLED.values(), ids=NOT_INSTALLED.keys())
def test_serve_without_mongodb_uri_or_embedded_database_says_what_to_do(
    tmp_path: Path, hide: str,
) -> None:
    grpc_port, http_port = free_ports(2)
    code = (f"import sys; {hide}; from trackd.cli.main import main; "
            f"sys.exit(main(['serve', '--data-dir', {str(tmp_path / 'data')!r}, "
            f"'--grpc-port', '{grpc_port}', '--http-port', '{http_port}']))")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(),
                            text=True, capture_output=True, stdin=subprocess.DEVNULL,
                            timeout=COMMAND_TIMEOUT, check=False)
    assert result.returncode != 0
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "MONGODB_URI" in errors[0]
    assert "trackd[embedded]" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


# --- help -----------------------------------------------------------------------------------


def test_help_lists_the_commands_and_serve_help_lists_its_flags(tmp_path: Path) -> None:
    top = trackd("--help", cwd=tmp_path)
    assert top.returncode == 0
    assert "serve" in top.stdout
    assert "keys" in top.stdout

    serve = trackd("serve", "--help", cwd=tmp_path)
    assert serve.returncode == 0
    for flag in ("--grpc-port", "--http-port", "--data-dir", "--mongodb-uri"):
        assert flag in serve.stdout
