"""The typed edge of the core: :class:`CognitiveInput` in, :class:`CognitiveResult` out.

Every caller builds its input with :func:`build_input` (the one place an input is validated):
the HTTP and WebSocket routes, ``user.input`` events, the adapters and the database plugin.
:func:`input_from_request` reads the seed's dict shape for ``process_cognitive_input``;
:func:`failure_dict` is the seed's error response for an :class:`EchoError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT
from deep_tree_echo.aar_core.memory.tenancy import validate_tenant
from deep_tree_echo.aar_core.sessions import validate_session_id
from deep_tree_echo.errors import EchoError, InvalidInputError

__all__ = [
    "MAX_TEXT_CHARS",
    "MEMORY_SCOPES",
    "CognitiveInput",
    "CognitiveResult",
    "build_input",
    "failure_dict",
    "input_from_request",
]

#: Longest accepted input text (characters).
MAX_TEXT_CHARS = 100_000
#: What an answer may draw on (``context.memory_scope``): the session's memories plus the
#: tenant's shared ones (stored without a session; the default), or all of the tenant's.
MEMORY_SCOPES = ("session", "tenant")


@dataclass(frozen=True, slots=True)
class CognitiveInput:
    """One validated input: its ``type``, ``content`` (text or structure), the ``text`` the
    agents read, a JSON-safe ``context``, the session (arena) it belongs to, if named, the
    tenant it acts for (from the caller's credentials) and the ``memory_scope`` of its answer."""

    type: str
    content: Any
    text: str
    context: dict[str, Any]
    session_id: str | None
    tenant: str = DEFAULT_TENANT
    memory_scope: str = "session"

    def as_request(self, *, context_key: str = "context") -> dict[str, Any]:
        """The seed's dict shape of this input (adapters name the context ``metadata``)."""
        return {"type": self.type, "content": self.content, context_key: dict(self.context)}


@dataclass(frozen=True, slots=True)
class CognitiveResult:
    """An answered input: the agent's text and confidence plus where it came from."""

    text: str
    agent: str
    type: str
    engine: str
    confidence: float
    session_id: str
    processing_time: float
    timestamp: str
    memories_used: list[dict[str, Any]] = field(default_factory=list)
    memory_id: str | None = None
    #: Agent extras (e.g. ``rows`` of a database agent), merged into the cognitive response.
    data: dict[str, Any] = field(default_factory=dict)

    def cognitive_response(self) -> dict[str, Any]:
        """The ``cognitive_response`` object of the seed's response."""
        response: dict[str, Any] = {
            "text": self.text,
            "agent": self.agent,
            "type": self.type,
            "engine": self.engine,
            "memories_used": self.memories_used,
            "memory_id": self.memory_id,
        }
        for key, value in self.data.items():
            response.setdefault(key, value)
        return response

    def to_dict(self) -> dict[str, Any]:
        """The seed's success response (``status`` ``"success"``)."""
        return {
            "status": "success",
            "cognitive_response": self.cognitive_response(),
            "processing_time": self.processing_time,
            "confidence": self.confidence,
            "timestamp": self.timestamp,
            "session_id": self.session_id,
        }


def now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        for key in ("message", "text", "query", "content"):
            value = content.get(key)
            if isinstance(value, str) and value.strip():
                return value
    return json.dumps(content, sort_keys=True, default=str)


def build_input(
    content: Any,
    *,
    type: Any = "text",
    context: Any = None,
    session_id: Any = None,
    tenant: str = DEFAULT_TENANT,
) -> CognitiveInput:
    """Validate one input; raise :class:`InvalidInputError` naming the problem.

    ``session_id`` defaults to ``context["session_id"]``; it is checked here and nowhere else.
    ``tenant`` comes from the caller's credentials, never from the input itself.
    """
    tenant = validate_tenant(tenant)
    input_type = "text" if type is None else type
    if not isinstance(input_type, str) or not input_type.strip():
        raise InvalidInputError("'type' must be a non-empty string", code="invalid_type")
    if content is None:
        raise InvalidInputError("'content' is required", code="missing_content")
    if not isinstance(content, str | Mapping | list):
        raise InvalidInputError(
            f"'content' must be a string or an object, not {content.__class__.__name__}",
            code="invalid_content",
        )
    if isinstance(content, Mapping):
        content = dict(content)
    text = _text_of(content)
    if not text.strip():
        raise InvalidInputError("'content' must not be empty", code="empty_content")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"'content' is {len(text)} characters; the limit is {MAX_TEXT_CHARS}",
            code="content_too_large",
        )
    if context is None:
        context = {}
    if not isinstance(context, Mapping):
        raise InvalidInputError("'context' must be an object", code="invalid_context")
    context = dict(context)
    if session_id is None:
        session_id = context.get("session_id")
    if session_id is not None:
        session_id = validate_session_id(session_id)
    scope = context.get("memory_scope", "session")
    if scope not in MEMORY_SCOPES:
        raise InvalidInputError(
            f"'memory_scope' must be one of {', '.join(MEMORY_SCOPES)}",
            code="invalid_memory_scope",
        )
    return CognitiveInput(
        input_type.strip(), content, text, context, session_id, tenant, scope
    )


def input_from_request(request: Any, *, tenant: str = DEFAULT_TENANT) -> CognitiveInput:
    """Read the seed's request dict: ``{"type", "content", "context"}``.

    The seed's adapters call the context ``metadata``: both names are accepted. A top-level
    ``session_id`` is used when the context names none.
    """
    if not isinstance(request, Mapping):
        raise InvalidInputError(
            f"request must be an object, not {request.__class__.__name__}",
            code="invalid_request",
        )
    context = request.get("context")
    if context is None:
        context = request.get("metadata")
    session_id = None
    if isinstance(context, Mapping):
        session_id = context.get("session_id")
    if session_id is None:
        session_id = request.get("session_id")
    return build_input(
        request.get("content"),
        type=request.get("type", "text"),
        context=context,
        session_id=session_id,
        tenant=tenant,
    )


def failure_dict(
    exc: EchoError, processing_time: float, session_id: str | None
) -> dict[str, Any]:
    """The seed's error response for ``exc`` (``status`` ``"error"``, the error's HTTP status)."""
    return {
        "status": "error",
        "error": {"code": exc.code, "message": exc.message, "http_status": exc.http_status},
        "cognitive_response": {},
        "processing_time": processing_time,
        "confidence": 0.0,
        "timestamp": now_iso(),
        "session_id": session_id,
    }
