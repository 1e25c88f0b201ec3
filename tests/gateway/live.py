"""A live ``trackd serve`` process for tests that drive the gateway from outside the test's
event loop (schemathesis, a browser): the real CLI on free ports, on the test run's
database under a database name of its own, started and stopped (SIGTERM, then kill) by the
process harness (tests/durability/harness.py's :class:`Trackd`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pymongo import MongoClient

from tests.durability.harness import COMMAND_TIMEOUT, TRACKD, Trackd, clean_env, dev_key
from tests.helpers import URI_ENV


@dataclass(frozen=True)
class Live:
    url: str
    key: str  # the development key of project 'default' (every scope)
    database: str
    logs: Path
    env: Mapping[str, str]  # the server's environment, for the CLI beside it
    out: Path  # the server's stdout and stderr, as files
    err: Path


def trackd_command(live: Live, *args: str) -> str:
    """``trackd ARGS`` on the live server's database; its standard output."""
    result = subprocess.run([str(TRACKD), *args], env=dict(live.env), cwd=live.logs,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=COMMAND_TIMEOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"trackd {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def create_website(live: Live, origin: str) -> str:
    """A website of project 'default' allowing ``origin``; its id."""
    return trackd_command(live, "websites", "create", "--project", "default",
                          "--origin", origin).strip().splitlines()[-1].strip()


@contextlib.contextmanager
def live_trackd(logs: Path, env: Mapping[str, str] | None = None) -> Iterator[Live]:
    """``trackd serve`` with ``env`` added to its environment, ready for requests.

    Called from synchronous fixtures: the harness's waits run in an event loop of their
    own."""
    uri = os.environ[URI_ENV]
    settings = {"TRACKD_DATABASE": f"t_{uuid.uuid4().hex[:16]}", **(env or {})}
    trackd = Trackd(logs, uri, **settings)
    try:
        asyncio.run(trackd.start())
        yield Live(trackd.url, dev_key(trackd.stdout), settings["TRACKD_DATABASE"], logs,
                   clean_env(MONGODB_URI=uri, **settings), trackd.out_path, trackd.err_path)
        asyncio.run(trackd.stop())
    finally:
        trackd.close()
        client: MongoClient[dict[str, object]] = MongoClient(uri)
        try:
            client.drop_database(settings["TRACKD_DATABASE"])
        finally:
            client.close()
