"""The default ``echo`` agent: remember every input, answer from memory.

It retrieves the memories most relevant to the input, asks the engine for an answer, then
stores the input as an episodic memory whose ``relations`` record the session (arena), the
agent and the memories used — the agent-arena-relation triple on the record itself.
Retrieval stays inside the caller's tenant and, by default, inside the session plus the
tenant's shared memories (those stored without a session); ``memory_scope="tenant"`` widens it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.aar_core.engines._text import is_question
from deep_tree_echo.aar_core.engines.base import EngineQuery
from deep_tree_echo.aar_core.memory.ranking import SearchResult


def _session_of(data: dict[str, Any]) -> Any:
    session = data.get("session_id")
    if session is None and isinstance(data.get("context"), dict):
        session = data["context"].get("session_id")
    return session


async def recall(ctx: AgentContext, query: str, limit: int) -> list[SearchResult]:
    """The memories an answer in ``ctx`` may use, best first (see the module docstring).

    Session scope asks the store twice: the session's own memories (an exact filter on
    ``session_id``), and the tenant's best matches from which those of any session are
    dropped (the shared ones); the two lists are merged by score.
    """
    memory = ctx.memory
    if ctx.memory_scope == "tenant":
        return await memory.search(query, limit)
    own = await memory.search(query, limit, session_id=ctx.session_id)
    pool = await memory.search(query, max(limit * 10, 100))
    shared = [r for r in pool if _session_of(r.data) is None]
    merged = sorted([*own, *shared], key=lambda r: r.score, reverse=True)
    return merged[:limit]


def memory_content(data: dict[str, Any]) -> str:
    """The text of a memory's ``content`` (JSON for structured content)."""
    content = data.get("content", "")
    if isinstance(content, str):
        return content
    return json.dumps(content, sort_keys=True, default=str)


class EchoAgent(Agent):
    """Memory-grounded default agent."""

    name = "echo"

    async def handle(self, ctx: AgentContext) -> AgentResult:
        question = is_question(ctx.text)
        limit = ctx.settings.memories_per_answer
        results = await recall(ctx, ctx.text, limit * 2)
        memories: list[dict[str, Any]] = []
        for r in results:
            if r.data.get("is_question"):
                continue  # earlier questions are not evidence
            memories.append(
                {"id": r.id, "content": memory_content(r.data), "score": round(r.score, 6),
                 "relevance": round(r.relevance, 6), "recency": round(r.recency, 6),
                 "importance": round(r.importance, 6)}
            )
            if len(memories) >= limit:
                break
        history = [(t.text, t.response) for t in ctx.session.history]
        answer = await ctx.call_engine(
            EngineQuery(ctx.text, question, memories, history, ctx.session_id)
        )
        memory_id = f"mem-{uuid.uuid4().hex}"
        data: dict[str, Any] = {
            "content": ctx.text,
            "kind": "episodic",
            "input_type": ctx.type,
            "is_question": question,
            "importance": 0.3 if question else 0.6,
            "session_id": ctx.session_id,
            "agent": self.name,
            "source": ctx.context.get("external_source"),
            "relations": {
                "session": ctx.session_id,
                "agent": self.name,
                "used_memories": [m["id"] for m in memories],
            },
        }
        if not isinstance(ctx.content, str):
            data["structured"] = ctx.content
        await ctx.memory.store_memory(memory_id, data)
        used = [  # the score and its breakdown, as ranked for this answer
            {k: m[k] for k in ("id", "score", "relevance", "recency", "importance")}
            for m in memories
        ]
        return AgentResult(answer.text, answer.confidence, dict(answer.details), used, memory_id)
