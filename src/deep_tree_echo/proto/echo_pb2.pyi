from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EchoRequest(_message.Message):
    __slots__ = ("message_type", "data", "payload", "source", "timestamp", "session_id")
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    message_type: str
    data: str
    payload: _struct_pb2.Struct
    source: str
    timestamp: str
    session_id: str
    def __init__(self, message_type: _Optional[str] = ..., data: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., source: _Optional[str] = ..., timestamp: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class ResponseMetadata(_message.Message):
    __slots__ = ("processing_time", "confidence")
    PROCESSING_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    processing_time: float
    confidence: float
    def __init__(self, processing_time: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class ErrorInfo(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("success", "data", "metadata", "error", "processed_at_ms")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    data: _struct_pb2.Struct
    metadata: ResponseMetadata
    error: ErrorInfo
    processed_at_ms: int
    def __init__(self, success: _Optional[bool] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metadata: _Optional[_Union[ResponseMetadata, _Mapping]] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ..., processed_at_ms: _Optional[int] = ...) -> None: ...

class MemoryRef(_message.Message):
    __slots__ = ("id", "score", "relevance", "recency", "importance")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    RECENCY_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    relevance: float
    recency: float
    importance: float
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., relevance: _Optional[float] = ..., recency: _Optional[float] = ..., importance: _Optional[float] = ...) -> None: ...

class CognitiveResponse(_message.Message):
    __slots__ = ("text", "agent", "type", "engine", "memories_used", "memory_id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_USED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    agent: str
    type: str
    engine: str
    memories_used: _containers.RepeatedCompositeFieldContainer[MemoryRef]
    memory_id: str
    def __init__(self, text: _Optional[str] = ..., agent: _Optional[str] = ..., type: _Optional[str] = ..., engine: _Optional[str] = ..., memories_used: _Optional[_Iterable[_Union[MemoryRef, _Mapping]]] = ..., memory_id: _Optional[str] = ...) -> None: ...
