"""The SDK stands alone: its limits are the server's, and importing it loads nothing of
the server, the gateway, storage or the CLI, nor their libraries."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from trackd.server import validation
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
    from trackd.wire import limits as wire

    assert limits.MAX_MESSAGE_BYTES == wire.MAX_MESSAGE_BYTES


FORBIDDEN = ("trackd.server", "trackd.gateway", "trackd.storage",
             "trackd.cli", "trackd.wire", "aiohttp", "pymongo", "pydantic",
             "pydantic_settings", "orjson", "uvloop", "grpc_status", "bson")

PROBE = """
import json, sys
import trackd_client
client = trackd_client.Client("127.0.0.1:1", "trk_unused", flush_interval=60)
client.track("probe", user_id="u1", properties={"n": 1})
client.close(timeout=0)
print(json.dumps(sorted({part for name in sys.modules for part in
                         (name.split(".")[0], ".".join(name.split(".")[:2]))})))
"""


def test_importing_and_using_the_sdk_loads_nothing_of_the_server() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"grpc", "google", "trackd", "trackd_client"} <= loaded
    assert loaded.isdisjoint(FORBIDDEN), sorted(loaded & set(FORBIDDEN))


def test_the_sdk_wheel_holds_the_sdk_and_the_stubs_and_needs_three_libraries(
        tmp_path: Path) -> None:
    """``pip install ./client`` is how a service installs the SDK alone; its wheel (built
    offline, with this environment's setuptools) carries trackd_client and trackd.v1, and
    depends on grpcio, protobuf and googleapis-common-protos only."""
    client = Path(__file__).parents[2] / "client"
    build = tmp_path / "src"
    # Built from a copy: the build leaves build/ and *.egg-info beside its sources.
    shutil.copytree(client, build / "client", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(client.parent / "proto", build / "proto",
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(tmp_path / "dist"),
         str(build / "client")], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("trackd_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        requires = sorted(line.split(":", 1)[1].strip().split(">=")[0]
                          for line in archive.read(metadata).decode().splitlines()
                          if line.startswith("Requires-Dist:"))
    assert requires == ["googleapis-common-protos", "grpcio", "protobuf"]
    assert {"trackd_client/__init__.py", "trackd_client/py.typed",
            "trackd/v1/tracking_pb2.py", "trackd/v1/tracking_pb2_grpc.py",
            "trackd/v1/users_pb2.py", "trackd/v1/users_pb2_grpc.py"} <= names
    assert not any(n.startswith(("trackd/server/", "trackd/gateway/", "trackd/storage/",
                                 "trackd/cli/")) for n in names)
