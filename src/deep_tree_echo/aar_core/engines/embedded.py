"""The embedded engine: answers questions from the most relevant stored memories.

No model: retrieval does the work (BM25 relevance + recency + importance, ranked by the
memory manager), and the answer is the stored sentence that best covers the question's
content words. Confidence blends that coverage with the top memory's ranking score.
"""

from __future__ import annotations

from typing import Any

from deep_tree_echo.aar_core.engines._text import content_tokens, sentences
from deep_tree_echo.aar_core.engines.base import CognitiveEngine, EngineAnswer, EngineQuery

NO_MEMORY_ANSWER = "I don't have any memories about that yet."


class EmbeddedEngine(CognitiveEngine):
    """Memory-grounded answers with no external dependency; the default engine."""

    name = "embedded"

    def __init__(self, *, max_score: float = 3.0) -> None:
        self.max_score = max_score  # sum of the ranking weights: the best possible score

    async def generate(self, query: EngineQuery) -> EngineAnswer:
        if not query.is_question:
            return EngineAnswer("Noted. I'll remember that.", 1.0, {"stored": True})
        wanted = content_tokens(query.text)
        best: tuple[float, float, str, dict[str, Any]] | None = None
        for memory in query.memories:
            content = str(memory.get("content", ""))
            for sentence in sentences(content) or [content]:
                have = content_tokens(sentence)
                coverage = len(wanted & have) / len(wanted) if wanted else 0.0
                if coverage <= 0.0:
                    continue
                # Prefer sentences that cover the question and carry something new.
                novelty = 0.1 if have - wanted else 0.0
                rank = coverage + novelty + 0.01 * float(memory.get("score", 0.0))
                if best is None or rank > best[0]:
                    best = (rank, coverage, sentence, memory)
        if best is None:
            return EngineAnswer(NO_MEMORY_ANSWER, 0.0, {"grounded": False})
        _, coverage, sentence, memory = best
        ranking = min(1.0, float(memory.get("score", 0.0)) / self.max_score)
        confidence = round(min(1.0, 0.6 * coverage + 0.4 * ranking), 4)
        return EngineAnswer(
            sentence, confidence, {"grounded": True, "source_memory": memory.get("id")}
        )
