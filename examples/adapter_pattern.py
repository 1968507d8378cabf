"""Seed pattern 3 — adapters: JSON, Protocol Buffers and MessagePack in and out of Echo.

    .venv/bin/python examples/adapter_pattern.py
"""

from __future__ import annotations

import asyncio

import msgpack

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.integration.adapters import (
    JSONAdapter,
    MessagePackAdapter,
    ProtocolBufferAdapter,
)
from deep_tree_echo.proto import CognitiveResponse, EchoRequest, EchoResponse


async def main() -> None:
    async with AARGateway({"test_mode": True}) as gateway:
        json_adapter = JSONAdapter()
        echo_input = json_adapter.to_echo_format({"text": "Paris is the capital of France"})
        out = json_adapter.from_echo_format(await gateway.process_cognitive_input(echo_input))
        print("json:", out["status"], out["result"]["type"])

        pb = ProtocolBufferAdapter(CognitiveResponse, ignore_unknown_fields=True)
        echo_input = pb.to_echo_format(EchoRequest(data="What is the capital of France?"))
        print("protobuf content:", echo_input["content"])
        message = pb.from_echo_format(await gateway.process_cognitive_input(echo_input))
        print("protobuf reply:", type(message).__name__, "agent =", message.agent)

        # proto3 JSON mapping: int64 travels as a string, default values are left out
        print("int64 as JSON:",
              ProtocolBufferAdapter(EchoResponse).to_echo_format(
                  EchoResponse(processed_at_ms=1700000000000))["content"])

        mp = MessagePackAdapter()
        packed = mp.from_echo_format(
            await gateway.process_cognitive_input(mp.to_echo_format(msgpack.packb({"text": "hi"})))
        )
        print("msgpack:", msgpack.unpackb(packed)["status"])


if __name__ == "__main__":
    asyncio.run(main())
