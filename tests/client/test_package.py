"""The SDK stands alone: its limits are the server's, and importing it loads nothing of
the server, the gateway, storage or the CLI, nor their libraries."""

from __future__ import annotations

import json
import subprocess
import sys

from server import validation
from trackd_client import limits


def test_the_sdk_limits_are_the_servers() -> None:
    assert limits.MAX_BATCH_EVENTS == validation.MAX_BATCH_EVENTS
    assert limits.MAX_BATCH_USERS == validation.MAX_BATCH_USERS
    assert limits.MAX_NAME_CHARS == validation.MAX_NAME_CHARS
    assert limits.MAX_ID_CHARS == validation.MAX_ID_CHARS
    assert limits.MAX_PROPERTY_KEYS == validation.MAX_PROPERTY_KEYS
    assert limits.MAX_PROPERTIES_BYTES == validation.MAX_PROPERTIES_BYTES
    assert limits.MAX_PROPERTY_DEPTH == validation.MAX_PROPERTY_DEPTH
    assert limits.MAX_PROPERTY_KEY_CHARS == validation.MAX_PROPERTY_KEY_CHARS
    assert limits.MAX_TRAIT_KEYS == validation.MAX_TRAIT_KEYS


def test_the_servers_message_limit_is_the_sdks() -> None:
    from server import app

    assert limits.MAX_MESSAGE_BYTES == app.MAX_MESSAGE_BYTES


FORBIDDEN = ("server", "gateway", "storage", "cli", "aiohttp", "pymongo", "pydantic",
             "pydantic_settings", "orjson", "uvloop", "grpc_status", "bson")

PROBE = """
import json, sys
import trackd_client
client = trackd_client.Client("127.0.0.1:1", "trk_unused", flush_interval=60)
client.track("probe", user_id="u1", properties={"n": 1})
client.close(timeout=0)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_importing_and_using_the_sdk_loads_nothing_of_the_server() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"grpc", "google", "trackd", "trackd_client"} <= loaded
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))
