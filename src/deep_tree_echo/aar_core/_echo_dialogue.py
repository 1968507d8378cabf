"""What the echo agent does with a dialogue act: greeting replies, the data kept with a fact
(its resolved dates) and the evidence handed to the engine.

Kept apart from ``echo_agent`` so the agent stays a short orchestration.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any, Final

from deep_tree_echo.aar_core.engines._dialogue import DialogueAct, sentence_act, sentences
from deep_tree_echo.aar_core.memory.ranking import SearchResult
from deep_tree_echo.aar_core.timeref import reference_date, resolve

_FAREWELL: Final = re.compile(r"\b(bye|goodbye|see you|take care|good night)\b", re.I)
_THANKS: Final = re.compile(r"\b(thanks|thank you|thx|cheers)\b", re.I)
_HOW_ARE_YOU: Final = re.compile(r"\b(how are you|how's it going|how have you been|what'?s up)",
                                 re.I)
#: Data fields that may carry the date a memory was said or written.
DATE_FIELDS: Final = ("said_on", "date", "timestamp", "created_at", "time")


def greeting_reply(text: str) -> str:
    """A short social reply matching the greeting's kind."""
    if _FAREWELL.search(text):
        return "Goodbye! I'll keep what you told me."
    if _THANKS.search(text):
        return "You're welcome."
    if _HOW_ARE_YOU.search(text):
        return "Hello! I'm doing well, thanks. What would you like me to remember or recall?"
    return "Hello! Tell me something to remember, or ask me."


def said_on(context: dict[str, Any]) -> date:
    """The message's date: ``context["timestamp"]`` when it parses, else today (UTC)."""
    return reference_date(context.get("timestamp")) or datetime.now(UTC).date()


def fact_fields(act: DialogueAct, context: dict[str, Any]) -> dict[str, Any]:
    """Extra data kept with a stored message: its act, speaker, date and resolved dates."""
    day = said_on(context)
    fields: dict[str, Any] = {"act": act.act, "said_on": day.isoformat()}
    if act.speaker:
        fields["speaker"] = act.speaker
    if not act.is_question:  # [] too: resolved, none found
        fields["dates"] = [ref.to_dict() for ref in resolve(act.content, day)]
    return fields


def question_replied_to(previous: str | None) -> str | None:
    """The previous turn when it asked something: a statement right after a question is
    usually its answer, so the question is kept (and indexed) with it as its ``title``, and
    "What got you into running?" later finds "I started to de-stress"."""
    if not previous:
        return None
    asked = any(sentence_act(s) in ("question", "command") for s in sentences(previous))
    return previous if asked else None


def _memory_day(data: dict[str, Any]) -> date:
    for key in DATE_FIELDS:
        day = reference_date(data.get(key))
        if day is not None:
            return day
    return datetime.now(UTC).date()


def memory_content(data: dict[str, Any]) -> str:
    """The text of a memory's ``content`` (JSON for structured content)."""
    content = data.get("content", "")
    if isinstance(content, str):
        return content
    return json.dumps(content, sort_keys=True, default=str)


def evidence_entry(result: SearchResult) -> dict[str, Any]:
    """A retrieved memory as the engine sees it: its resolved ``dates`` when it has them (the
    engine resolves the others, only for "when" questions, against ``said_on``: the memory's
    own date field, else today)."""
    content = memory_content(result.data)
    entry: dict[str, Any] = {
        "id": result.id, "content": content, "score": round(result.score, 6),
        "relevance": round(result.relevance, 6), "recency": round(result.recency, 6),
        "importance": round(result.importance, 6),
    }
    dates = result.data.get("dates")
    if isinstance(dates, list):
        entry["dates"] = dates
    title = result.data.get("title")
    if isinstance(title, str) and title:
        entry["context"] = title  # e.g. the question this memory answered
    entry["said_on"] = _memory_day(result.data).isoformat()
    return entry


def evidence_entries(results: list[SearchResult]) -> list[dict[str, Any]]:
    """:func:`evidence_entry` of each result, relevance rescaled so the most relevant of them
    has 1.0 (what was left out, e.g. earlier questions, no longer sets the scale)."""
    entries = [evidence_entry(r) for r in results]
    best = max((e["relevance"] for e in entries), default=0.0)
    if 0.0 < best < 1.0:
        for e in entries:
            e["relevance"] = round(e["relevance"] / best, 6)
    return entries
