"""Protocol Buffers messages of the integration API (generated from ``echo.proto``).

``EchoRequest``/``EchoResponse`` are the ``application/x-protobuf`` bodies of
``POST /v1/process``; ``CognitiveResponse`` types the gateway's ``cognitive_response``.
"""

from __future__ import annotations

from deep_tree_echo.proto.echo_pb2 import (
    CognitiveResponse,
    EchoRequest,
    EchoResponse,
    ErrorInfo,
    MemoryRef,
    ResponseMetadata,
)

__all__ = [
    "CognitiveResponse",
    "EchoRequest",
    "EchoResponse",
    "ErrorInfo",
    "MemoryRef",
    "ResponseMetadata",
]
