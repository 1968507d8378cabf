"""Cognitive engines: ``embedded`` (default, memory-grounded) and ``openai`` (HTTP)."""

from __future__ import annotations

from deep_tree_echo._events import EventSink
from deep_tree_echo.aar_core.engines.base import CognitiveEngine, EngineAnswer, EngineQuery
from deep_tree_echo.aar_core.engines.embedded import EmbeddedEngine
from deep_tree_echo.aar_core.engines.openai import OpenAIEngine
from deep_tree_echo.config import EchoSettings


def engine_from_settings(
    settings: EchoSettings, event_bus: EventSink | None = None
) -> CognitiveEngine:
    """The engine named by ``settings.engine``; ``event_bus`` gets its breaker's events."""
    if settings.engine == "openai":
        return OpenAIEngine(
            settings.openai_base_url,
            model=settings.openai_model,
            api_key=settings.openai_api_key,
            timeout=settings.openai_timeout,
            max_retries=settings.openai_max_retries,
            failure_threshold=settings.openai_failure_threshold,
            event_bus=event_bus,
        )
    return EmbeddedEngine()


__all__ = [
    "CognitiveEngine",
    "EmbeddedEngine",
    "EngineAnswer",
    "EngineQuery",
    "OpenAIEngine",
    "engine_from_settings",
]
