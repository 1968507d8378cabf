"""The default ``echo`` agent: keep what is told, answer what is asked, greet back.

The input's dialogue act (by sentence form, see ``engines._dialogue``) decides: a greeting
gets a greeting and is not stored as a fact; a statement or a "remember that ..." request is
stored (the request without its lead) with its relative dates resolved against the message's
time, and with the question it answers when the turn before asked one (as its ``title``,
which search indexes); a question retrieves the most relevant facts (earlier questions
excluded), asks the engine, and is kept as a question (``is_question``), which searches
leave out by default.
Retrieval stays inside the caller's tenant and, by default, inside the session plus the
tenant's shared memories (those stored without a session); ``memory_scope="tenant"`` widens it.
Stored memories' ``relations`` record the session (arena), the agent and the memories used:
the agent-arena-relation triple on the record itself.
"""

from __future__ import annotations

from typing import Any

from deep_tree_echo.aar_core._echo_dialogue import (
    evidence_entries,
    fact_fields,
    greeting_reply,
    memory_content,
    question_replied_to,
)
from deep_tree_echo.aar_core._echo_recall import gather, recall
from deep_tree_echo.aar_core.agents import Agent, AgentContext, AgentResult
from deep_tree_echo.aar_core.engines._answer import search_text, wants_several
from deep_tree_echo.aar_core.engines._dialogue import classify
from deep_tree_echo.aar_core.engines.base import EngineQuery

__all__ = ["EchoAgent", "memory_content"]


class EchoAgent(Agent):
    """Memory-grounded default agent."""

    name = "echo"

    async def handle(self, ctx: AgentContext) -> AgentResult:
        act = classify(ctx.text)
        if act.act == "greeting":
            return AgentResult(greeting_reply(ctx.text), 1.0, {"act": "greeting"})
        question = act.is_question
        limit = ctx.settings.memories_per_answer
        memories: list[dict[str, Any]] = []
        if question:
            # earlier questions are not evidence: fetch twice what the engine reads and skip
            # them here (a search filter is checked on every candidate, a cost the search's
            # fast path avoids)
            if wants_several(ctx.text):  # a list: wider, and per person named
                facts = await gather(ctx, ctx.text, limit)
            else:
                results = await recall(ctx, search_text(ctx.text), limit * 2)
                facts = [r for r in results if not r.data.get("is_question")][:limit]
            memories = evidence_entries(facts)
        history = ctx.session.history.exchanges()
        answer = await ctx.call_engine(
            EngineQuery(ctx.text, question, memories, history, ctx.session_id)
        )
        data: dict[str, Any] = {
            "content": act.content if act.act == "remember" else ctx.text,
            "kind": "question" if question else "episodic",
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
            **fact_fields(act, ctx.context),
        }
        if not question and ctx.session.history:
            replied_to = question_replied_to(ctx.session.history[-1].text)
            if replied_to:
                data["title"] = replied_to
        if not isinstance(ctx.content, str):
            data["structured"] = ctx.content
        ctx.announce(answer.text)  # stored with the memory where the store logs its changes
        memory_id = (await ctx.memory.add_memory(data)).id
        used = [  # the score and its breakdown, as ranked for this answer
            {k: m[k] for k in ("id", "score", "relevance", "recency", "importance")}
            for m in memories
        ]
        details = {"act": act.act, **answer.details}
        return AgentResult(answer.text, answer.confidence, details, used, memory_id)
