"""JSON, Protocol Buffers and MessagePack adapters, pinned to the proto3 JSON mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgpack
import pytest

from deep_tree_echo.aar_core.gateway import AARGateway
from deep_tree_echo.errors import InvalidInputError
from deep_tree_echo.integration.adapters import (
    DataAdapter,
    JSONAdapter,
    MessagePackAdapter,
    ProtocolBufferAdapter,
)
from deep_tree_echo.integration.errors import AdapterError
from deep_tree_echo.proto import CognitiveResponse, EchoRequest, EchoResponse


@pytest.fixture
async def gateway() -> AsyncIterator[AARGateway]:
    async with AARGateway({"test_mode": True}) as gw:
        yield gw


def test_data_adapter_is_abstract() -> None:
    with pytest.raises(TypeError):
        DataAdapter()  # type: ignore[abstract]


async def test_json_adapter_round_trip(gateway: AARGateway) -> None:
    adapter = JSONAdapter()
    echo_input = adapter.to_echo_format({"text": "remember the milk"})
    assert echo_input == {"type": "json_input", "content": {"text": "remember the milk"},
                          "metadata": {"format": "json", "schema_version": "1.0"}}
    result = await gateway.process_cognitive_input(echo_input)
    out = adapter.from_echo_format(result)
    assert set(out) == {"result", "status", "timestamp"}
    assert out["status"] == "success"
    assert out["result"]["type"] == "json_input"
    assert out["timestamp"] == result["timestamp"]
    assert adapter.from_echo_format({}) == {"result": {}, "status": "unknown", "timestamp": None}


def test_protobuf_to_echo_format_follows_proto3_json_rules() -> None:
    adapter = ProtocolBufferAdapter(EchoRequest)
    out = adapter.to_echo_format(EchoRequest(message_type="text", data="hi", source=""))
    # default-valued fields are omitted, names are lowerCamelCase
    assert out == {"type": "protobuf_input",
                   "content": {"messageType": "text", "data": "hi"},
                   "metadata": {"format": "protobuf", "message_type": "EchoRequest"}}
    # proto3 `optional` fields have presence: set to "" they are still emitted
    assert adapter.to_echo_format(EchoRequest(session_id=""))["content"] == {"sessionId": ""}


def test_protobuf_int64_is_a_string_in_json() -> None:
    adapter = ProtocolBufferAdapter(EchoResponse)
    message = EchoResponse(success=True, processed_at_ms=2**53 + 1)
    content = adapter.to_echo_format(message)["content"]
    assert content == {"success": True, "processedAtMs": "9007199254740993"}


def test_protobuf_options_keep_field_names_and_print_defaults() -> None:
    adapter = ProtocolBufferAdapter(
        EchoResponse, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    content = adapter.to_echo_format(EchoResponse())["content"]
    assert content == {"success": False, "processed_at_ms": "0"}


def test_protobuf_from_echo_format_parses_the_cognitive_response() -> None:
    adapter = ProtocolBufferAdapter(EchoResponse)
    message = adapter.from_echo_format(
        {"cognitive_response": {"success": True, "processedAtMs": "9007199254740993",
                                "data": {"k": [1, "two"]}}}
    )
    assert isinstance(message, EchoResponse)
    assert message.processed_at_ms == 2**53 + 1
    assert message.data["k"][1] == "two"


async def test_protobuf_from_real_gateway_response(gateway: AARGateway) -> None:
    adapter = ProtocolBufferAdapter(CognitiveResponse, ignore_unknown_fields=True)
    result = await gateway.process_cognitive_input(
        adapter.to_echo_format(EchoRequest(data="the sky is blue"))
    )
    message = adapter.from_echo_format(result)
    assert message.agent == "echo"
    assert message.type == "protobuf_input"
    assert message.engine == result["cognitive_response"]["engine"]
    assert message.text == result["cognitive_response"]["text"]


async def test_protobuf_unknown_fields_are_a_typed_error(gateway: AARGateway) -> None:
    adapter = ProtocolBufferAdapter(CognitiveResponse)
    with pytest.raises(AdapterError, match="CognitiveResponse") as info:
        adapter.from_echo_format({"cognitive_response": {"text": "x", "rows": []}})
    assert isinstance(info.value, InvalidInputError)
    with pytest.raises(AdapterError, match="protobuf message"):
        adapter.to_echo_format({"not": "a message"})  # type: ignore[arg-type]


async def test_msgpack_adapter_round_trip(gateway: AARGateway) -> None:
    adapter = MessagePackAdapter()
    echo_input = adapter.to_echo_format(msgpack.packb({"text": "hello", "n": 2}))
    assert echo_input == {"type": "msgpack_input", "content": {"text": "hello", "n": 2},
                          "metadata": {"format": "msgpack"}}
    packed = adapter.from_echo_format(await gateway.process_cognitive_input(echo_input))
    out = msgpack.unpackb(packed)
    assert out["status"] == "success"
    assert out["result"]["type"] == "msgpack_input"
    assert adapter.to_echo_format({"already": "unpacked"})["content"] == {"already": "unpacked"}


@pytest.mark.parametrize("data", [b"\xc1", msgpack.packb([1, 2]), b"\x81\xa1a"])
def test_msgpack_adapter_rejects_bad_input(data: bytes) -> None:
    with pytest.raises(AdapterError):
        MessagePackAdapter().to_echo_format(data)


def test_msgpack_output_fields_and_their_defaults() -> None:
    adapter = MessagePackAdapter()
    full = msgpack.unpackb(adapter.from_echo_format(
        {"cognitive_response": {"k": b"\x00bytes"}, "status": "success", "timestamp": 12.5}),
        raw=False)
    assert full == {"result": {"k": b"\x00bytes"}, "status": "success", "timestamp": 12.5}
    empty = msgpack.unpackb(adapter.from_echo_format({}), raw=False)
    assert empty == {"result": {}, "status": "unknown", "timestamp": None}


def test_msgpack_input_refusals_and_text_keys() -> None:
    adapter = MessagePackAdapter()
    assert adapter.to_echo_format(msgpack.packb({"t": "x"}))["content"] == {"t": "x"}
    with pytest.raises(AdapterError, match=r"^MessagePack data must be a map, not list$"):
        adapter.to_echo_format(msgpack.packb([1, 2]))
    with pytest.raises(AdapterError, match=r"^invalid MessagePack data: "):
        adapter.to_echo_format(b"\xc1")  # a byte MessagePack never uses


def test_protobuf_adapter_refuses_what_is_not_a_message() -> None:
    with pytest.raises(AdapterError, match=r"^expected a protobuf message, got dict$"):
        ProtocolBufferAdapter(EchoRequest).to_echo_format({"text": "hi"})  # type: ignore[arg-type]


def test_protobuf_output_without_a_response_is_an_empty_message() -> None:
    assert ProtocolBufferAdapter(EchoResponse).from_echo_format({}) == EchoResponse()
