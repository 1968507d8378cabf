"""List answers: a question asking for several things ("What books has Tim read?", "Where
has Maria camped?") is answered with one short clause from each of several memories.

Items come from the memories with enough evidence, then from those that only come close (a
list is told over several turns, an item often without the question's words); a memory is an
item when its answering sentence (or the question it answered) holds one of the asked
attribute's words and, for a question naming a period, it falls in it. Each item is its
answering sentence only, with the next one when it says little beyond the question, in the
listener's perspective; an item that adds fewer than :data:`_NEW_TERMS` words to those
already listed is left out. Items from different days come first (one per day, best ranked
first), then the rest, up to :data:`LIST_CAP` in all. The confidence is that of the best item.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from deep_tree_echo.aar_core.engines._answer import (
    Evidence,
    Question,
    _asked_terms,
    _asks,
    _confidence,
    _dated,
    _expanded,
    _profile,
    _said,
    _terms,
)
from deep_tree_echo.aar_core.memory.analysis import analyze

#: A list answer names at most this many items (one short clause each).
LIST_CAP: Final = 6
#: An item must add at least this many words (index terms) to what the list already says.
_NEW_TERMS: Final = 2
#: An item sharing this share of its words with one already listed says the same (Jaccard).
_SAME: Final = 0.3
#: An item takes the sentence after its answering one while both stay this short (words).
_ITEM_WORDS: Final = 25
#: Light verbs: they say that something was done, not what (an item needs another word).
_LIGHT: Final = frozenset(analyze("do done did does make made have has had get got go went "
                                  "gone take took like likes"))


def _item_clause(question: Question, evidence: Evidence) -> str:
    """The answering sentence, with the next one when it says little beyond the question or
    both stay short (the item is often said right after the words that find it: "homemade
    desserts. My favorite is the banana split")."""
    parts = _profile(str(evidence.memory.get("content", "")))[4]
    try:
        index = parts.index(evidence.sentence)
    except ValueError:
        return evidence.sentence
    novel = _terms(evidence.sentence) - question.terms
    if (index + 1 < len(parts) and not _asks(parts[index + 1])
            and (len(novel) < 3 or len(f"{evidence.sentence} {parts[index + 1]}".split())
                 <= _ITEM_WORDS)):
        return f"{evidence.sentence} {parts[index + 1]}"
    return evidence.sentence


def _aspect(question: Question) -> frozenset[str]:
    """The attribute words an item must speak of: light verbs only when there is nothing
    else."""
    attributes = question.terms - question.entities
    return (attributes - _LIGHT) or attributes


def _hits(question: Question, evidence: Evidence, clause: str) -> int:
    """How many aspect words an item speaks of: in its clause, else in the question the
    memory answered."""
    aspect = _aspect(question)
    if not aspect:
        return 1
    hits = len(aspect & _expanded(clause))
    context = evidence.memory.get("context")
    if not hits and isinstance(context, str):
        hits = len(aspect & _asked_terms(context))
    return hits


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def list_items(
    question: Question, found: list[Evidence], near: list[Evidence]
) -> list[Evidence]:
    """The items of a list answer, best first, each with its short clause (see the module
    docstring); the first is the best evidence."""
    scored: list[tuple[int, int, Evidence]] = []
    seen_memories: set[object] = set()
    for order, evidence in enumerate([*found, *near]):
        key = evidence.memory.get("id") or id(evidence.memory)
        if key in seen_memories or _asks(evidence.sentence) or not evidence.dated:
            continue
        # the best answer keeps the passage said around it; the other items are short
        clause = _item_clause(question, evidence) if order else evidence.clause
        hits = _hits(question, evidence, clause)
        if order and not hits:
            continue
        seen_memories.add(key)
        scored.append((-hits if order else -1_000, order, replace(evidence, clause=clause)))
    if not scored:
        return []
    candidates = [e for _, _, e in sorted(scored, key=lambda s: s[:2])]
    chosen = [candidates[0]]
    said: set[str] = set(_terms(candidates[0].clause))
    days = {candidates[0].memory.get("said_on")}
    for first_pass in (True, False):
        for evidence in candidates[1:]:
            if len(chosen) >= LIST_CAP:
                return chosen
            if any(evidence is c for c in chosen):
                continue
            day = evidence.memory.get("said_on")
            if first_pass and day in days:
                continue
            terms = _terms(evidence.clause)
            if len(terms - said) < _NEW_TERMS:
                continue
            if any(_overlap(terms, _terms(c.clause)) >= _SAME for c in chosen):
                continue
            chosen.append(evidence)
            said |= terms
            days.add(day)
    return chosen


def list_reply(
    question: Question, found: list[Evidence], near: list[Evidence]
) -> tuple[str, float]:
    """The reply to a list question and its confidence (that of the best evidence): the
    items' clauses, the first one alone, the others after ``Also:``."""
    items = list_items(question, found, near) or found[:1]
    text = _said(items[0])
    if len(items) > 1:
        text = " ".join([text, "Also:", *(_said(e) for e in items[1:])])
    text, factor = _dated(question, found[0], text)
    return text, min(1.0, _confidence(found[0]) * factor)
