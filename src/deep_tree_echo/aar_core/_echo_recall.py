"""What the echo agent retrieves for a question: one search, or for a question asking for
several things ("What books has Tim read?", "Where has Maria made friends?") a few searches
whose results are pooled.

A list is told over many sessions, its items often far down one search's ranking: besides
the question's own search, for each person it names (at most :data:`MAX_PEOPLE`) the memories
that person said are searched for the question's other words (the name itself left out: a
speaker seldom says their own name, and the name would only match the turns addressed to
them). The pool takes the searches' results in turns, keeps each memory once (as the main
search found it) and hands the engine up to :data:`LIST_WIDTH` times what a plain question
reads; relevance is rescaled per search (its best fact 1.0), a focused search's down to
:data:`FOCUSED_WEIGHT`, so none passes for the main search's best.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from typing import Any, Final

from deep_tree_echo.aar_core.agents import AgentContext
from deep_tree_echo.aar_core.engines._answer import search_text
from deep_tree_echo.aar_core.engines._dialogue import split_speaker
from deep_tree_echo.aar_core.memory.ranking import SearchResult

#: People searched for on their own, at most (each costs one more search; a second one
#: added nothing on the dev set and cost latency).
MAX_PEOPLE: Final = 1
#: A list question reads up to this many times the memories of a plain one.
LIST_WIDTH: Final = 3
#: Relevance factor of a memory found only by a focused search.
FOCUSED_WEIGHT: Final = 0.9
#: A capitalised word after the first one: a person named ("Melanie", "Maria's").
_NAME: Final = re.compile(r"(?<!^)(?<![.!?]\s)\b([A-Z][a-z]+)(?:['\u2019]s?)?\b")
_NOT_NAMES: Final = frozenset(("I", "I'm", "I've", "I'd", "I'll"))
#: Words a person's name follows in a question ("has Maria", "with John", "and Tim").
_BEFORE_PEOPLE: Final = frozenset((
    "has", "have", "had", "does", "do", "did", "is", "are", "was", "were", "will", "would",
    "can", "could", "should", "with", "by", "for", "to", "from", "and", "about", "of", "at",
))


def _session_of(data: dict[str, Any]) -> Any:
    session = data.get("session_id")
    if session is None and isinstance(data.get("context"), dict):
        session = data["context"].get("session_id")
    return session


async def recall(
    ctx: AgentContext, query: str, limit: int, **filters: Any
) -> list[SearchResult]:
    """The memories an answer in ``ctx`` may use, best first (tenant scope, or the session
    plus the tenant's shared memories; ``filters`` as in ``MemoryManager.search``).

    Session scope asks the store twice: the session's own memories (an exact filter on
    ``session_id``), and the tenant's best matches from which those of any session are
    dropped (the shared ones); the two lists are merged by score.
    """
    memory = ctx.memory
    if ctx.memory_scope == "tenant":
        return await memory.search(query, limit, **filters)
    own = await memory.search(query, limit, session_id=ctx.session_id, **filters)
    pool = await memory.search(query, max(limit * 10, 100), **filters)
    shared = [r for r in pool if _session_of(r.data) is None]
    merged = sorted([*own, *shared], key=lambda r: r.score, reverse=True)
    return merged[:limit]


def people_named(text: str) -> list[str]:
    """The people a question names, as a speaker label would spell them ("What has Melanie
    painted?" → ``["Melanie"]``), at most :data:`MAX_PEOPLE`: capitalised words after the
    first, those in a person's place first (possessive, or after an auxiliary or a preposition:
    "has Maria", "Maria's", "with John"; "European" in "What European countries" is not)."""
    _, body = split_speaker(text)
    found: list[tuple[bool, str]] = []
    for m in _NAME.finditer(body):
        name = m.group(1)
        if name in _NOT_NAMES:
            continue
        before = body[:m.start()].split()
        placed = (m.group(0) != name
                  or (bool(before) and before[-1].lower().strip(",") in _BEFORE_PEOPLE))
        found.append((not placed, name))
    ordered = [name for _, name in sorted(found, key=lambda f: f[0])]  # stable: text order
    return list(dict.fromkeys(ordered))[:MAX_PEOPLE]


def _without(text: str, names: list[str]) -> str:
    for name in names:
        text = re.sub(rf"\b{re.escape(name)}(?:['\u2019]s?)?\b", " ", text)
    return text


def _facts(results: list[SearchResult], weight: float = 1.0) -> list[SearchResult]:
    """The results that are not earlier questions, relevance rescaled so the best of them
    has ``weight``: each search is measured against its own best, the main one first."""
    facts = [r for r in results if not r.data.get("is_question")]
    best = max((r.relevance for r in facts), default=0.0)
    if best <= 0.0:
        return facts
    return [replace(r, relevance=weight * r.relevance / best) for r in facts]


async def gather(ctx: AgentContext, text: str, limit: int) -> list[SearchResult]:
    """Up to ``LIST_WIDTH * limit`` pooled facts (earlier questions left out) for a question
    asking for several things, ``limit`` being what a plain question reads: the question's own
    search, as a plain question runs it (``2 * limit`` wide, questions dropped), and each named
    person's own memories searched for the rest of the question, as wide (see the module
    docstring), taken in turns so each search contributes: the focused searches are the only
    extra cost."""
    width = limit * LIST_WIDTH
    lists = [_facts(await recall(ctx, search_text(text), limit * 2))]
    names = people_named(text)
    rest = search_text(_without(split_speaker(text)[1], names))
    for name in names:
        lists.append(_facts(await recall(ctx, rest, limit * 2, speaker=name), FOCUSED_WEIGHT))
    pooled: dict[str, SearchResult] = {}
    for row in itertools.zip_longest(*lists):
        for r in row:
            if r is not None and r.id not in pooled:
                pooled[r.id] = r
        if len(pooled) >= width:
            break
    return list(pooled.values())[:width]
