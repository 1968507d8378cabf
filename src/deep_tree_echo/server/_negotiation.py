"""Content negotiation and body codecs of ``POST /v1/process``: JSON, protobuf, MessagePack.

The request format comes from ``Content-Type`` (absent means JSON); the response format from
``Accept`` (absent or ``*/*`` means the request's format). Decoders raise :class:`DecodeError`
with the decoder's own reason; shape problems raise :class:`InvalidRequestError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from typing import Any, Final, Literal

import msgpack
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError

from deep_tree_echo._json import COMPACT_ENCODER, loads_text
from deep_tree_echo.integration.errors import (
    DecodeError,
    InvalidRequestError,
    NotAcceptableError,
    UnsupportedMediaTypeError,
)
from deep_tree_echo.proto.echo_pb2 import EchoRequest, EchoResponse

Format = Literal["json", "protobuf", "msgpack"]

JSON: Final = "application/json"
PROTOBUF: Final = "application/x-protobuf"
MSGPACK: Final = "application/msgpack"

#: Canonical media type of each format (used in responses).
MEDIA_TYPES: Final[dict[Format, str]] = {"json": JSON, "protobuf": PROTOBUF, "msgpack": MSGPACK}

#: Every media type accepted on requests, aliases included.
_ALIASES: Final[dict[str, Format]] = {
    JSON: "json",
    PROTOBUF: "protobuf",
    "application/protobuf": "protobuf",
    "application/vnd.google.protobuf": "protobuf",
    "application/x-google-protobuf": "protobuf",
    MSGPACK: "msgpack",
    "application/x-msgpack": "msgpack",
    "application/vnd.msgpack": "msgpack",
}

_PREFERENCE: Final[tuple[Format, ...]] = ("json", "protobuf", "msgpack")


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def request_format(
    content_type: str | None, allowed: Collection[Format] = _PREFERENCE
) -> Format:
    """The format of a request body from its ``Content-Type``; JSON when absent.

    ``*/*+json`` media types are JSON. :class:`UnsupportedMediaTypeError` for anything that is
    not one of the ``allowed`` formats.
    """
    if content_type is None or not content_type.strip():
        fmt: Format | None = "json"
        media = JSON
    else:
        media = _media_type(content_type)
        fmt = _ALIASES.get(media) or ("json" if media.endswith("+json") else None)
    if fmt is None or fmt not in allowed:
        supported = ", ".join(MEDIA_TYPES[f] for f in _PREFERENCE if f in allowed)
        raise UnsupportedMediaTypeError(
            f"unsupported Content-Type {media!r}; use one of {supported}", content_type=media
        )
    return fmt


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        if not part.strip():
            continue
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
        ranges.append((media.lower(), quality))
    return ranges


def _quality(media: str, ranges: list[tuple[str, float]]) -> float:
    """The q-value the most specific matching range gives ``media`` (0 when none matches)."""
    major = media.split("/", 1)[0]
    best: tuple[int, float] = (-1, 0.0)
    for pattern, quality in ranges:
        if pattern == media:
            specificity = 2
        elif pattern == f"{major}/*":
            specificity = 1
        elif pattern == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best[0]:
            best = (specificity, quality)
    return best[1]


def response_format(accept: str | None, default: Format) -> Format:
    """The best response format for ``Accept``; ``default`` (the request's) wins ties."""
    if accept is None or not accept.strip():
        return default
    ranges = _parse_accept(accept)
    scored: list[tuple[float, int, Format]] = []
    for rank, fmt in enumerate((default, *[f for f in _PREFERENCE if f != default])):
        media_types = [m for m, f in _ALIASES.items() if f == fmt]
        quality = max(_quality(media, ranges) for media in media_types)
        if quality > 0:
            scored.append((quality, -rank, fmt))
    if not scored:
        supported = ", ".join(MEDIA_TYPES.values())
        raise NotAcceptableError(
            f"cannot produce any type in Accept {accept!r}; available: {supported}", accept=accept
        )
    return max(scored)[2]


# -- decoding ---------------------------------------------------------------------------------


def _require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRequestError(f"{what} body must be an object, not {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def protobuf_to_request(message: EchoRequest) -> dict[str, Any]:
    """An :class:`EchoRequest` as the external request dict of the gateway pattern."""
    request: dict[str, Any] = {}
    if message.message_type:
        request["message_type"] = message.message_type
    if message.HasField("payload"):
        if message.data:
            raise InvalidRequestError("set either 'data' or 'payload', not both")
        request["data"] = json_format.MessageToDict(message.payload)
    elif message.data:
        request["data"] = message.data
    if message.source:
        request["source"] = message.source
    if message.HasField("timestamp"):
        request["timestamp"] = message.timestamp
    if message.HasField("session_id"):
        request["session_id"] = message.session_id
    return request


def decode_json(body: bytes, *, what: str = "invalid JSON body") -> Any:
    """Parse a JSON body (I-JSON: no lone surrogates); :class:`DecodeError` is
    ``"{what}: {reason}"``."""
    try:
        return loads_text(body)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, LoneSurrogateError
        raise DecodeError(f"{what}: {exc}") from exc
    except RecursionError as exc:
        raise DecodeError(f"{what}: nested too deeply") from exc


def decode_request(fmt: Format, body: bytes) -> dict[str, Any]:
    """Decode a request body; :class:`DecodeError` carries the decoder's reason."""
    if fmt == "json":
        value = decode_json(body)
        if type(value) is dict:  # a JSON object's keys are strings already: no copy needed
            return value
        return _require_object(value, "JSON")
    if fmt == "msgpack":
        try:
            value = msgpack.unpackb(body, raw=False)
        except Exception as exc:  # msgpack raises ValueError subclasses and its own errors
            reason = str(exc) or type(exc).__name__
            raise DecodeError(f"invalid MessagePack body: {reason}") from exc
        return _require_object(value, "MessagePack")
    message = EchoRequest()
    try:
        message.ParseFromString(body)
    except ProtobufDecodeError as exc:
        raise DecodeError(f"invalid protobuf EchoRequest body: {exc}") from exc
    return protobuf_to_request(message)


# -- encoding ---------------------------------------------------------------------------------


def response_to_protobuf(response: Mapping[str, Any]) -> EchoResponse:
    """The external response dict as an :class:`EchoResponse` (stamped ``processed_at_ms``)."""
    message = EchoResponse(success=bool(response.get("success")))
    data = response.get("data")
    if isinstance(data, Mapping) and data:
        message.data.update(_struct_safe(data))
    metadata = response.get("metadata")
    if isinstance(metadata, Mapping):
        message.metadata.processing_time = float(metadata.get("processing_time") or 0.0)
        message.metadata.confidence = float(metadata.get("confidence") or 0.0)
    error = response.get("error")
    if isinstance(error, Mapping):
        message.error.code = str(error.get("code", ""))
        message.error.message = str(error.get("message", ""))
    message.processed_at_ms = time.time_ns() // 1_000_000
    return message


def _struct_safe(value: Any) -> Any:
    """``value`` with everything a ``Struct`` cannot hold turned into JSON-compatible values."""
    return json.loads(json.dumps(value, default=str))


def encode_response(fmt: Format, response: Mapping[str, Any]) -> bytes:
    if fmt == "json":
        return COMPACT_ENCODER.encode(response).encode()
    if fmt == "msgpack":
        packed: bytes = msgpack.packb(_struct_safe(response), use_bin_type=True)
        return packed
    return response_to_protobuf(response).SerializeToString()
