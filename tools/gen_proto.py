"""Regenerate the committed Python code for every proto under proto/.

Run from anywhere: ``python tools/gen_proto.py``. It writes ``*_pb2.py``, ``*_pb2.pyi``,
``*_pb2_grpc.py`` and ``*_pb2_grpc.pyi`` beside each ``.proto`` file. The generator is
pinned through the ``grpcio-tools`` and ``mypy-protobuf`` versions in pyproject.toml's
``dev`` extra, so the output is byte-for-byte reproducible and CI can fail on drift.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    mypy_grpc = shutil.which("protoc-gen-mypy_grpc", path=str(Path(sys.executable).parent))
    if mypy_grpc is None:
        print("protoc-gen-mypy_grpc not found: install the dev extra", file=sys.stderr)
        return 1
    well_known = Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--python_out={PROTO_ROOT}",
        f"--pyi_out={PROTO_ROOT}",
        f"--grpc_python_out={PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy_grpc={mypy_grpc}",
        f"--mypy_grpc_out={PROTO_ROOT}",
        *protos,
    ]
    return int(protoc.main(args))


if __name__ == "__main__":
    raise SystemExit(main())
