"""The embedded engine: answers questions from the most relevant stored memories.

No model: retrieval does the work (BM25 relevance + recency + importance, ranked by the
memory manager) and the answer is the clause of a memory that covers the question's entity
and attribute (see ``_answer``), said from the listener's side ("my sister" → "your
sister"); "When ...?" answers lead with the date resolved when the memory was stored, "How
long ...?" ones with the duration said (``_duration``), questions asking for several things
get a short list (``_gather``). Without enough evidence it says it does not know yet, with a
low confidence (showing the closest memory when that one at least names what was asked
about).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from deep_tree_echo.aar_core.engines._answer import (
    DONT_KNOW,
    compose,
    find_evidence,
    parse_question,
    tentative,
)
from deep_tree_echo.aar_core.engines._dialogue import split_speaker
from deep_tree_echo.aar_core.engines._duration import asks_how_long, duration_lead
from deep_tree_echo.aar_core.engines._gather import list_reply
from deep_tree_echo.aar_core.engines.base import CognitiveEngine, EngineAnswer, EngineQuery
from deep_tree_echo.aar_core.timeref import reference_date

NO_MEMORY_ANSWER = DONT_KNOW
#: Confidence of a "don't know" reply: low, so callers can tell it from an answer.
DONT_KNOW_CONFIDENCE = 0.0


def _asked_on(memories: list[dict[str, Any]]) -> date | None:
    """The latest day the memories were said: what a date without a year in the question is
    resolved against (the engine does not get the question's own time)."""
    days = [d for d in (reference_date(m.get("said_on")) for m in memories) if d is not None]
    return max(days, default=None)


class EmbeddedEngine(CognitiveEngine):
    """Memory-grounded answers with no external dependency; the default engine."""

    name = "embedded"

    def __init__(self, *, max_score: float = 3.0) -> None:
        self.max_score = max_score  # sum of the ranking weights: the best possible score

    async def generate(self, query: EngineQuery) -> EngineAnswer:
        if not query.is_question:
            return EngineAnswer("Noted. I'll remember that.", 1.0, {"stored": True})
        question = parse_question(query.text, _asked_on(query.memories))
        found, near = find_evidence(question, query.memories)
        if not found:
            if not near:
                return EngineAnswer(DONT_KNOW, DONT_KNOW_CONFIDENCE, {"grounded": False})
            text, confidence = tentative(question, near)
            return EngineAnswer(text, confidence, {"grounded": False,
                                                   "closest_memory": near[0].memory.get("id")})
        if question.wants == "list":
            text, confidence = list_reply(question, found, near)
        else:
            text, confidence = compose(question, found)
        evidence = found[0]
        body = split_speaker(query.text)[1]
        lead = (duration_lead(body, evidence.clause, evidence.memory.get("said_on"))
                if asks_how_long(body) else None)
        if lead:  # "How long ...?": the duration said, in digits, first
            text = f"{lead}: {text}"
        return EngineAnswer(
            text,
            round(max(0.0, min(1.0, confidence)), 4),
            {"grounded": True, "source_memory": evidence.memory.get("id"),
             "coverage": round(evidence.coverage, 4)},
        )
