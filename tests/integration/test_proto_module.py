"""The generated echo_pb2 module: accepted by the installed runtime and in sync with echo.proto."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2, runtime_version

from deep_tree_echo.proto import echo_pb2

PROTO_DIR = Path(echo_pb2.__file__).parent
SRC = PROTO_DIR.parent.parent


def test_gencode_version_is_accepted_by_the_runtime() -> None:
    source = (PROTO_DIR / "echo_pb2.py").read_text()
    match = re.search(
        r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),"
        r"\s*(\d+),",
        source,
    )
    assert match, "generated module lost its runtime version check"
    gencode = tuple(int(g) for g in match.groups())
    runtime = (runtime_version.OSS_MAJOR, runtime_version.OSS_MINOR, runtime_version.OSS_PATCH)
    assert gencode[0] == runtime[0], f"gencode {gencode} vs runtime {runtime}: major differs"
    assert gencode <= runtime
    # a fresh interpreter imports it with every warning turned into an error
    subprocess.run(
        [sys.executable, "-W", "error", "-c", "import deep_tree_echo.proto.echo_pb2"],
        check=True,
    )


def test_generated_module_matches_echo_proto(tmp_path: Path) -> None:
    """Regenerate from echo.proto and compare descriptors, so the two cannot drift apart."""
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{SRC}",
         f"--descriptor_set_out={out}/d.pb", str(PROTO_DIR / "echo.proto")],
        check=True,
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString((out / "d.pb").read_bytes()).file[0]
    shipped = descriptor_pb2.FileDescriptorProto()
    echo_pb2.DESCRIPTOR.CopyToProto(shipped)
    fresh.ClearField("source_code_info")
    for message in fresh.message_type:  # protoc fills json_name only in descriptor sets
        for field in message.field:
            field.ClearField("json_name")
    assert shipped == fresh


def test_message_shapes() -> None:
    request = echo_pb2.EchoRequest.DESCRIPTOR
    assert request.full_name == "deep_tree_echo.v1.EchoRequest"
    assert [f.name for f in request.fields] == [
        "message_type", "data", "payload", "source", "timestamp", "session_id"]
    response = echo_pb2.EchoResponse.DESCRIPTOR
    assert [f.name for f in response.fields] == [
        "success", "data", "metadata", "error", "processed_at_ms"]
    assert response.fields_by_name["processed_at_ms"].type == response.fields[0].TYPE_INT64
    assert response.fields_by_name["data"].message_type.full_name == "google.protobuf.Struct"
