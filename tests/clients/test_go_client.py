"""The Go example client (examples/go) on the stubs scripts/stubs generates (Debian's
protoc-gen-go and protoc-gen-go-grpc), built offline against Debian's Go packages (GOPATH
mode over /usr/share/gocode, no module proxy), against a live trackd: it tracks an event,
and reads the BadRequest field violation and the ErrorInfo reason of an invalid one.

Skipped when Debian's Go toolchain or gRPC library is not installed (``scripts/stubs``
installs them when run as root), except in CI, where that fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.clients.helpers import ROOT, expected_output, run, toolchain_missing
from tests.helpers import stored_events
from trackd.server.app import TrackdServer
from trackd.storage import Store

GO = shutil.which("go")
GOCODE = Path("/usr/share/gocode/src")
NEEDED = ["google.golang.org/grpc", "google.golang.org/protobuf",
          "google.golang.org/genproto/googleapis/rpc/errdetails", "github.com/golang/protobuf"]
MISSING = [path for path in NEEDED if not (GOCODE / path).is_dir()]


@pytest.fixture
def go_toolchain() -> str:
    """The go binary, with Debian's plugins and libraries, else a skip (a failure in CI).
    The build script finds go on PATH, as this does."""
    if GO is None:
        toolchain_missing("no Go toolchain (Debian: apt-get install golang-go)")
    if MISSING:
        toolchain_missing(f"Debian's Go libraries are missing ({', '.join(MISSING)}): "
                          "scripts/stubs installs them when run as root")
    if shutil.which("protoc-gen-go") is None or shutil.which("protoc-gen-go-grpc") is None:
        toolchain_missing("Debian's protoc-gen-go and protoc-gen-go-grpc are not installed")
    return GO


async def build(tmp_path: Path) -> Path:
    """Build examples/go offline with its build script (GOPATH over Debian's packages)."""
    binary = tmp_path / "track"
    status, stdout, stderr = await run([str(ROOT / "examples" / "go" / "build"), str(binary)])
    assert status == 0, stdout + stderr
    return binary


async def test_go_client_tracks_and_reads_rich_errors(
    go_toolchain: str, stubs: Path, tmp_path: Path, server: TrackdServer, api_key: str,
    store: Store,
) -> None:
    assert (stubs / "go" / "trackd" / "v1" / "tracking_grpc.pb.go").exists()
    binary = await build(tmp_path)

    status, stdout, stderr = await run(
        [str(binary), "-target", f"127.0.0.1:{server.port}"], env={"TRACKD_API_KEY": api_key})
    assert status == 0, stderr

    docs = await stored_events(store)
    assert [(d["name"], d["user_id"], d["properties"]) for d in docs] == [
        ("user_signed_up", "usr_42", {"plan": "trial", "seats": 3})]
    assert stdout == expected_output(docs[0]["event_id"])
