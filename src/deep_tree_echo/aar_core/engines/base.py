"""The one small interface every cognitive engine implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class EngineQuery:
    """What an engine answers: the input text and the memories retrieved for it.

    ``memories`` are dicts ``{"id", "content", "score", "relevance"}`` ranked best first;
    ``history`` is the session's recent turns as ``(user_text, answer)`` pairs.
    """

    text: str
    is_question: bool
    memories: list[dict[str, Any]] = field(default_factory=list)
    history: list[tuple[str, str]] = field(default_factory=list)
    session_id: str | None = None


@dataclass(slots=True)
class EngineAnswer:
    """An engine's reply with a confidence in [0, 1] and JSON-safe details."""

    text: str
    confidence: float
    details: dict[str, Any] = field(default_factory=dict)


class CognitiveEngine(ABC):
    """Turns a query plus retrieved memories into an answer."""

    name: str = "engine"

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (HTTP clients, models). Idempotent."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""

    @abstractmethod
    async def generate(self, query: EngineQuery) -> EngineAnswer:
        """Answer ``query``; raise ``EngineError`` when the engine cannot."""
