"""The Go example client (examples/go) on the stubs scripts/stubs generates (Debian's
protoc-gen-go and protoc-gen-go-grpc), built offline against Debian's Go packages (GOPATH
mode over /usr/share/gocode, no module proxy), against a live trackd: it tracks an event,
and reads the BadRequest field violation and the ErrorInfo reason of an invalid one.

Skipped when Debian's Go toolchain or gRPC library is not installed (``scripts/stubs``
installs them when run as root; CI does).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.app import TrackdServer
from storage import Store
from tests.clients.conftest import ROOT, expected_output, run
from tests.conftest import stored_events

GO = shutil.which("go")
GOCODE = Path("/usr/share/gocode/src")
NEEDED = ["google.golang.org/grpc", "google.golang.org/protobuf",
          "google.golang.org/genproto/googleapis/rpc/errdetails", "github.com/golang/protobuf"]
MISSING = [path for path in NEEDED if not (GOCODE / path).is_dir()]

pytestmark = [
    pytest.mark.skipif(GO is None, reason="no Go toolchain (Debian: apt-get install golang-go)"),
    pytest.mark.skipif(bool(MISSING), reason=f"Debian's Go libraries are missing ({MISSING}): "
                       "scripts/stubs installs them when run as root"),
    pytest.mark.skipif(shutil.which("protoc-gen-go") is None
                       or shutil.which("protoc-gen-go-grpc") is None,
                       reason="Debian's protoc-gen-go and protoc-gen-go-grpc are not installed"),
]


async def build(tmp_path: Path) -> Path:
    """Build examples/go offline; the import path `trackd/...` is this repository."""
    assert GO is not None
    gopath = tmp_path / "gopath"
    (gopath / "src").mkdir(parents=True)
    (gopath / "src" / "trackd").symlink_to(ROOT)
    binary = tmp_path / "track"
    status, stdout, stderr = await run(
        [GO, "build", "-o", str(binary), "trackd/examples/go"], cwd=tmp_path,
        env={"GO111MODULE": "off", "GOPROXY": "off", "GOFLAGS": "",
             "GOPATH": f"{gopath}:{GOCODE.parent}"})
    assert status == 0, stdout + stderr
    return binary


async def test_go_client_tracks_and_reads_rich_errors(
    stubs: Path, tmp_path: Path, server: TrackdServer, api_key: str, store: Store
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
