"""A protoc plugin (stdin: CodeGeneratorRequest, stdout: CodeGeneratorResponse) that writes
``*_pb2_grpc.py`` with the gRPC Python generator built into grpcio-tools' protoc.

grpcio-tools ships that generator only inside its protoc, not as a ``protoc-gen-*``
program, so ``buf generate`` (buf.gen.yaml) runs this as a local plugin:
``local: [".venv/bin/python", "tools/protoc_gen_grpc_python.py"]``. It hands the request's
files to grpcio-tools' protoc as a descriptor set and returns what it writes, so the output
is the same as ``tools/gen_proto.py``'s, from the version pinned in pyproject.toml.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    # grpcio-tools' protoc handles proto3 `optional` (users.proto uses it).
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL)
    with tempfile.TemporaryDirectory(prefix="grpc-python-") as tmp:
        descriptors = Path(tmp, "descriptors.binpb")
        descriptors.write_bytes(descriptor_pb2.FileDescriptorSet(
            file=request.proto_file).SerializeToString())
        out = Path(tmp, "out")
        out.mkdir()
        options = f"{request.parameter}:" if request.parameter else ""
        status = protoc.main([
            "grpc_tools.protoc", f"--descriptor_set_in={descriptors}",
            f"--grpc_python_out={options}{out}", *request.file_to_generate])
        if status != 0:
            response.error = f"grpc_tools.protoc failed with status {status}"
            return response
        for path in sorted(out.rglob("*")):
            if path.is_file():
                response.file.add(name=str(path.relative_to(out)), content=path.read_text())
    return response


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
