"""The TypeScript example client (examples/typescript/track.ts) on the stubs scripts/stubs
generates (protoc-gen-es) and @connectrpc/connect-node's gRPC transport, against a live
trackd: it tracks an event, and reads the BadRequest field violation and the ErrorInfo
reason of an invalid one. The example also type-checks with tsc.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.clients.helpers import ROOT, expected_output, run, toolchain_missing
from tests.helpers import stored_events
from trackd.server.app import TrackdServer
from trackd.storage import Store

NODE = shutil.which("node")
EXAMPLE = ROOT / "examples" / "typescript"
BIN = ROOT / "node_modules" / ".bin"


@pytest.fixture(autouse=True)
def node() -> None:
    if NODE is None:
        toolchain_missing("node (Node.js >= 20) is not installed")

async def test_typescript_client_tracks_and_reads_rich_errors(
    stubs: Path, server: TrackdServer, api_key: str, store: Store
) -> None:
    assert (stubs / "ts" / "trackd" / "v1" / "tracking_pb.ts").exists()
    status, stdout, stderr = await run(
        [str(BIN / "tsx"), str(EXAMPLE / "track.ts"), f"127.0.0.1:{server.port}"],
        env={"TRACKD_API_KEY": api_key})
    assert status == 0, stderr

    docs = await stored_events(store)
    assert [(d["name"], d["user_id"], d["properties"]) for d in docs] == [
        ("user_signed_up", "usr_42", {"plan": "trial", "seats": 3})]
    assert stdout == expected_output(docs[0]["event_id"])


async def test_typescript_client_type_checks(stubs: Path) -> None:
    status, stdout, stderr = await run([str(BIN / "tsc"), "-p", str(EXAMPLE)])
    assert status == 0, stdout + stderr
