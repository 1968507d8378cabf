"""An engine backed by any OpenAI-compatible chat-completions server.

Aphrodite Engine (default ``http://localhost:2242/v1``), vLLM, Ollama and llama.cpp's
server all speak this protocol. Calls go through the resilience stack (rate limiter,
circuit breaker, retries with backoff, timeout); a down server becomes ``EngineError``.
"""

from __future__ import annotations

from typing import Any

from deep_tree_echo._events import EventSink
from deep_tree_echo.aar_core.engines.base import CognitiveEngine, EngineAnswer, EngineQuery
from deep_tree_echo.aar_core.errors import EngineError
from deep_tree_echo.errors import EchoError

SYSTEM_PROMPT = (
    "You are Deep Tree Echo, a cognitive assistant. Answer using the memories below when "
    "they are relevant; say so when they are not.\n\nMemories:\n{memories}"
)


class OpenAIEngine(CognitiveEngine):
    """Chat completions over HTTP, with retrieved memories as context.

    ``event_bus`` (e.g. the gateway's) receives the breaker's ``circuit.state_changed``
    events; ``failure_threshold`` is how many failed calls open the breaker. Completions have
    no side effects, so POSTs are retried even after they may have reached the server.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str = "http://localhost:2242/v1",
        *,
        model: str = "default",
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 2,
        max_tokens: int = 512,
        failure_threshold: int = 5,
        event_bus: EventSink | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.failure_threshold = failure_threshold
        self.event_bus = event_bus
        self._api: Any = None

    async def start(self) -> None:
        if self._api is not None:
            return
        from deep_tree_echo.resilience import ResilientAPIIntegration

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._api = ResilientAPIIntegration(
            {
                "base_url": self.base_url,
                "name": "openai",
                "timeout": self.timeout,
                "max_retries": self.max_retries,
                "headers": headers,
                "failure_threshold": self.failure_threshold,
                "recovery_timeout": 30,
                "max_requests": 1_000_000,
                "time_window": 1,
                "retry_unsafe": True,  # a completion has no side effects: re-sending is safe
            },
            event_bus=self.event_bus,
        )

    async def stop(self) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    def _messages(self, query: EngineQuery) -> list[dict[str, str]]:
        memories = "\n".join(f"- {m.get('content', '')}" for m in query.memories) or "(none)"
        messages = [{"role": "system", "content": SYSTEM_PROMPT.format(memories=memories)}]
        for user_text, answer in query.history[-6:]:
            messages.append({"role": "user", "content": user_text})
            messages.append({"role": "assistant", "content": answer})
        messages.append({"role": "user", "content": query.text})
        return messages

    async def generate(self, query: EngineQuery) -> EngineAnswer:
        await self.start()
        body = {"model": self.model, "messages": self._messages(query),
                "max_tokens": self.max_tokens}
        try:
            reply = await self._api.make_api_call("/chat/completions", body, method="POST")
            text = str(reply["choices"][0]["message"]["content"]).strip()
        except EchoError as exc:
            raise EngineError(
                f"LLM server at {self.base_url} is unavailable: {exc.message}",
                upstream=exc.code,
            ) from exc
        except (KeyError, IndexError, TypeError) as exc:
            raise EngineError(
                f"LLM server at {self.base_url} sent an unexpected reply: {exc!r}"
            ) from exc
        top = float(query.memories[0].get("score", 0.0)) / 3.0 if query.memories else 0.0
        confidence = round(min(1.0, 0.5 + 0.5 * top), 4)
        return EngineAnswer(text, confidence, {"model": reply.get("model", self.model)})
