"""The ``trackd`` command, run as a real process: ``serve`` and ``keys create|revoke|list``.

Every test runs the installed console script in a subprocess with its own ``--data-dir``
(so its own embedded database) and its own free ports. Nothing is mocked; every process is
bounded by a timeout and stopped in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pymongo import MongoClient

from storage.embedded import EmbeddedDatabase
from tests.conftest import free_ports

TRACKD = Path(sys.executable).parent / "trackd"
ACCEPTED = {"data": {"accepted": True}}
SEED_EVENT: dict[str, Any] = {
    "external_user_id": "usr_42",
    "name": "user_signed_up",
    "properties": {"plan": "trial", "source": "organic"},
}
DEV_KEY_BANNER = "Created a development API key for project 'default'"
READY_LINE = "trackd is serving"
# A logging line (``%(asctime)s %(levelname)s ...``) at a level that is not an error.
INFO_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO) ")

START_TIMEOUT = 90.0  # generous bounds for slow CI machines; never asserted on
STOP_TIMEOUT = 60.0
COMMAND_TIMEOUT = 120.0


def clean_env() -> dict[str, str]:
    """The environment minus every setting trackd reads, so only the flags count."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("TRACKD_") and k != "MONGODB_URI"}


def trackd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``trackd ARGS`` to completion (killed if it outlives the timeout)."""
    return subprocess.run([str(TRACKD), *args], cwd=cwd, env=clean_env(), text=True,
                          capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=COMMAND_TIMEOUT, check=False)


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


class Serve:
    """A running ``trackd serve``; its stdout and stderr go to files read while it runs."""

    def __init__(self, data_dir: Path, logs: Path) -> None:
        self.data_dir = data_dir
        self.grpc_port, self.http_port = free_ports(2)
        name = f"serve-{uuid.uuid4().hex[:8]}"
        self._out_path = logs / f"{name}.out"
        self._err_path = logs / f"{name}.err"
        self._out = self._out_path.open("wb")
        self._err = self._err_path.open("wb")
        self.proc = subprocess.Popen(
            [str(TRACKD), "serve", "--data-dir", str(data_dir),
             "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port)],
            cwd=logs, env=clean_env(), stdin=subprocess.DEVNULL,
            stdout=self._out, stderr=self._err,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def stdout(self) -> str:
        return self._out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self._err_path.read_text(errors="replace")

    def wait_ready(self, *, port_may_be_taken: bool = False) -> bool:
        """Wait until it serves; False if it exited because a port it was given was taken
        meanwhile (free ports are only free when looked at) and ``port_may_be_taken``."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if READY_LINE in self.stderr:
                return True
            if self.proc.poll() is not None:
                if port_may_be_taken and "address already in use" in self.stderr:
                    return False
                pytest.fail(f"trackd serve exited with {self.proc.returncode} before serving:\n"
                            f"stdout:\n{self.stdout}\nstderr:\n{self.stderr}")
            time.sleep(0.1)
        pytest.fail(f"trackd serve did not get ready:\nstdout:\n{self.stdout}\n"
                    f"stderr:\n{self.stderr}")

    def terminate(self) -> int:
        """SIGTERM, as a process manager stops it; its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(STOP_TIMEOUT)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()  # its database child gets SIGTERM (PDEATHSIG)
                    self.proc.wait(STOP_TIMEOUT)
        finally:
            self._out.close()
            self._err.close()


@contextlib.contextmanager
def serving(data_dir: Path, logs: Path) -> Iterator[Serve]:
    """``trackd serve`` on ``data_dir``, ready for requests, stopped afterwards. A port
    taken between picking it and trackd's bind means new ports (a failed start makes no
    key: both ports are bound first)."""
    for attempt in range(3):
        serve = Serve(data_dir, logs)
        try:
            if not serve.wait_ready(port_may_be_taken=attempt < 2):
                continue
            yield serve
            return
        finally:
            serve.close()


def dev_key(stdout: str) -> str:
    """The key printed on the line after the first-start banner."""
    lines = stdout.splitlines()
    banner = [i for i, line in enumerate(lines) if DEV_KEY_BANNER in line]
    assert banner, f"no development key banner in stdout:\n{stdout}"
    key = lines[banner[0] + 1].strip()
    assert key.startswith("trk_"), lines
    return key


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


def test_first_serve_prints_a_working_dev_key_and_restart_keeps_key_and_data(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with serving(data_dir, tmp_path) as first:
        key = dev_key(first.stdout)
        assert str(first.grpc_port) in first.stderr
        assert str(first.http_port) in first.stderr
        assert post_event(first.url, key, SEED_EVENT) == (202, ACCEPTED)
        assert first.terminate() == 0

    with serving(data_dir, tmp_path) as second:
        assert DEV_KEY_BANNER not in second.stdout
        assert "trk_" not in second.stdout
        with running_database(data_dir) as client:
            stored = list(client["trackd"]["events"].find(
                {"project_id": "default"}, {"_id": 0, "name": 1, "user_id": 1, "properties": 1}))
        assert stored == [{"name": "user_signed_up", "user_id": "usr_42",
                           "properties": {"plan": "trial", "source": "organic"}}]
        # The key printed on the first start is still the project's key.
        assert post_event(second.url, key, SEED_EVENT) == (202, ACCEPTED)
        assert second.terminate() == 0


# --- serve: SIGTERM under load ---------------------------------------------------------------

Outcome = tuple[str, int | None, str]  # (event id, HTTP status or None, what happened)


async def fire(serve: Serve, key: str, count: int, stop_after: int) -> tuple[list[Outcome], int]:
    """``count`` concurrent single-event requests; SIGTERM once ``stop_after`` are answered.

    After the signal, clients keep sending (ten at a time) until one finds the server gone.
    Returns every request's outcome, and how many had been answered when the signal went.
    """
    answered = 0
    enough = asyncio.Event()
    headers = {"Authorization": f"Bearer {key}"}

    async def one(session: aiohttp.ClientSession) -> Outcome:
        nonlocal answered
        event_id = f"evt_{uuid.uuid4().hex}"
        try:
            async with session.post(f"{serve.url}/api/v1/events",
                                    json={**SEED_EVENT, "event_id": event_id},
                                    headers=headers) as response:
                return event_id, response.status, await response.text()
        except aiohttp.ClientConnectionError as exc:
            return event_id, None, f"connection error: {exc!r}"
        except TimeoutError as exc:
            return event_id, None, f"timeout: {exc!r}"
        finally:
            answered += 1
            if answered >= stop_after:
                enough.set()

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=STOP_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(count)]
        await asyncio.wait_for(enough.wait(), START_TIMEOUT)
        serve.proc.send_signal(signal.SIGTERM)
        answered_at_signal = answered
        late: list[Outcome] = []
        for _ in range(100):
            wave = await asyncio.wait_for(
                asyncio.gather(*(one(session) for _ in range(10))), STOP_TIMEOUT * 2)
            late += wave
            if any(status is None for _, status, _ in wave):
                break
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks), STOP_TIMEOUT * 2)
    return outcomes + late, answered_at_signal


def test_sigterm_under_load_exits_0_and_every_accepted_event_is_stored_once(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    with serving(data_dir, tmp_path) as serve:
        key = dev_key(serve.stdout)
        outcomes, answered_at_signal = asyncio.run(fire(serve, key, count=200, stop_after=20))
        status = serve.proc.wait(STOP_TIMEOUT)
        assert status == 0, serve.stderr

    accepted: list[str] = []
    for event_id, code, text in outcomes:
        if code == 202:
            assert json.loads(text) == ACCEPTED
            accepted.append(event_id)
        elif code == 503:  # retryable, in the dialect's envelope
            assert json.loads(text)["errors"][0]["code"] == "service_unavailable"
        else:  # never another status, never a hang: the connection was refused or closed
            assert code is None, (code, text)
            assert text.startswith("connection error"), text
    assert len(accepted) >= answered_at_signal >= 20
    # The clients kept going until the server was gone.
    assert any(code is None for _, code, _ in outcomes)

    # What the database holds after the process is gone, read from the same directory.
    with EmbeddedDatabase(data_dir.resolve()) as database:
        client: MongoClient[dict[str, Any]] = MongoClient(database.uri,
                                                          serverSelectionTimeoutMS=10_000)
        try:
            stored = Counter(doc["event_id"] for doc in client["trackd"]["events"].find(
                {"project_id": "default", "event_id": {"$in": [o[0] for o in outcomes]}},
                {"event_id": 1}))
        finally:
            client.close()
    assert [event_id for event_id in accepted if stored[event_id] != 1] == []
    assert all(n == 1 for n in stored.values())


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


def test_keys_beside_a_running_server_take_effect_on_the_gateway(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with serving(data_dir, tmp_path) as serve:
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
            time.sleep(0.25)
            status, body = post_event(serve.url, secret, SEED_EVENT)
        assert status == 401, body
        assert body["errors"][0]["code"] == "unauthorized"
        assert serve.terminate() == 0, serve.stderr


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
    code = (f"import sys; {hide}; from cli.main import main; "
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
