"""The adapter pattern: convert external data formats to Echo inputs and Echo responses back.

``to_echo_format`` builds a cognitive input with the one builder
(:func:`~deep_tree_echo.aar_core.cognitive.build_input`) and returns the seed's dict shape
(``{"type", "content", "metadata"}``) for :meth:`AARGateway.process_cognitive_input`;
``from_echo_format`` turns its response into the external format. JSON, Protocol Buffers
(via :mod:`google.protobuf.json_format`) and MessagePack ship here;
subclass :class:`DataAdapter` for others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import msgpack
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from google.protobuf.message import Message

from deep_tree_echo.aar_core.cognitive import build_input
from deep_tree_echo.integration.errors import AdapterError

__all__ = [
    "DataAdapter",
    "JSONAdapter",
    "MessagePackAdapter",
    "ProtocolBufferAdapter",
]

M = TypeVar("M", bound=Message)


class DataAdapter(ABC):
    """Base adapter for data format transformations."""

    @abstractmethod
    def to_echo_format(self, external_data: Any) -> dict[str, Any]:
        """Convert external data to Echo internal format."""

    @abstractmethod
    def from_echo_format(self, echo_data: dict[str, Any]) -> Any:
        """Convert Echo data to external format."""


class JSONAdapter(DataAdapter):
    """JSON objects in, ``{"result", "status", "timestamp"}`` out."""

    def to_echo_format(self, json_data: dict[str, Any]) -> dict[str, Any]:
        return build_input(
            json_data, type="json_input", context={"format": "json", "schema_version": "1.0"}
        ).as_request(context_key="metadata")

    def from_echo_format(self, echo_data: dict[str, Any]) -> dict[str, Any]:
        return {
            "result": echo_data.get("cognitive_response", {}),
            "status": echo_data.get("status", "unknown"),
            "timestamp": echo_data.get("timestamp"),
        }


class ProtocolBufferAdapter(DataAdapter, Generic[M]):
    """Protobuf messages in; ``cognitive_response`` parsed into ``proto_class`` out.

    Conversions follow the proto3 JSON mapping of ``json_format``: by default fields keep
    their lowerCamelCase JSON names, fields at their default value are left out and 64-bit
    integers become strings. The keyword options pass straight to ``MessageToDict`` and
    ``ParseDict``; ``ignore_unknown_fields=True`` lets ``cognitive_response`` keys the message
    does not declare (e.g. data an agent added) be skipped instead of failing.
    """

    def __init__(
        self,
        proto_class: type[M],
        *,
        preserving_proto_field_name: bool = False,
        always_print_fields_with_no_presence: bool = False,
        ignore_unknown_fields: bool = False,
    ) -> None:
        self.proto_class = proto_class
        self.preserving_proto_field_name = preserving_proto_field_name
        self.always_print_fields_with_no_presence = always_print_fields_with_no_presence
        self.ignore_unknown_fields = ignore_unknown_fields

    def to_echo_format(self, proto_message: Message) -> dict[str, Any]:
        if not isinstance(proto_message, Message):
            raise AdapterError(
                f"expected a protobuf message, got {type(proto_message).__name__}"
            )
        # Convert protobuf to dict
        message_dict = MessageToDict(
            proto_message,
            always_print_fields_with_no_presence=self.always_print_fields_with_no_presence,
            preserving_proto_field_name=self.preserving_proto_field_name,
        )
        return build_input(
            message_dict,
            type="protobuf_input",
            context={"format": "protobuf", "message_type": proto_message.DESCRIPTOR.name},
        ).as_request(context_key="metadata")

    def from_echo_format(self, echo_data: dict[str, Any]) -> M:
        # Convert back to protobuf
        response = self.proto_class()
        try:
            ParseDict(
                echo_data.get("cognitive_response", {}),
                response,
                ignore_unknown_fields=self.ignore_unknown_fields,
            )
        except ParseError as exc:
            raise AdapterError(
                f"cannot parse the cognitive response into "
                f"{self.proto_class.DESCRIPTOR.full_name}: {exc}"
            ) from exc
        return response


class MessagePackAdapter(DataAdapter):
    """MessagePack bytes (or an already-unpacked map) in, MessagePack bytes out."""

    def to_echo_format(self, packed: bytes | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(packed, bytes | bytearray | memoryview):
            try:
                content = msgpack.unpackb(bytes(packed), raw=False)
            except Exception as exc:
                raise AdapterError(f"invalid MessagePack data: {exc}") from exc
        else:
            content = packed
        if not isinstance(content, Mapping):
            raise AdapterError(f"MessagePack data must be a map, not {type(content).__name__}")
        return build_input(
            content, type="msgpack_input", context={"format": "msgpack"}
        ).as_request(context_key="metadata")

    def from_echo_format(self, echo_data: dict[str, Any]) -> bytes:
        packed: bytes = msgpack.packb(
            {
                "result": echo_data.get("cognitive_response", {}),
                "status": echo_data.get("status", "unknown"),
                "timestamp": echo_data.get("timestamp"),
            },
            use_bin_type=True,
        )
        return packed
