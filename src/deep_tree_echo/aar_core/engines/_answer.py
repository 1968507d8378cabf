"""Answers from retrieved memories: enough evidence or "I don't know", the answering clause,
the listener's perspective and, for "When ...?", the resolved date.

Evidence: the entities a question names (possessors such as "sister" in "my sister's name",
proper names) must appear in the memory, and at least half of its other content terms in the
chosen sentence (after stemming, US spelling and a few synonyms such as name ~ called); the
sentence must also say something the question does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from deep_tree_echo.aar_core.engines._dialogue import sentences, split_speaker
from deep_tree_echo.aar_core.memory.analysis import analyze, strip_tail, term
from deep_tree_echo.aar_core.timeref import format_day

DONT_KNOW: Final = "I don't know that yet."
#: Question words that ask for the act of recalling, not for a topic.
_ASKING: Final = frozenset(analyze("tell remember recall know say mention please"))
#: Stemmed synonyms: a memory term also counts as the terms it maps to.
_SYNONYMS: Final = {
    term("call"): {term("name")}, term("named"): {term("name")},
    term("live"): {term("home")}, term("home"): {term("live")},
    term("job"): {term("work")}, term("work"): {term("job")},
    term("born"): {term("birthday")}, term("birthday"): {term("born")},
    term("like"): {term("favorite"), term("love"), term("enjoy")},
    term("love"): {term("favorite"), term("like"), term("enjoy")},
    term("enjoy"): {term("like"), term("love")},
}
_WHEN: Final = re.compile(r"^\s*(when\b|what (?:year|date|day|month|time)\b|how long ago\b)",
                          re.IGNORECASE)
_CLAUSE: Final = re.compile(r",\s+|;\s+|\s+[-\u2013\u2014]+\s+|\s+(?=(?:and|but|because|so|"
                            r"although|though|while|since)\s)")
_TOKEN: Final = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*|[^\w\s]+|\s+|_")
_CLAUSE_WORDS: Final = 22


@dataclass(frozen=True, slots=True)
class Question:
    """A question's content terms, the entity terms among them and whether it asks "when"."""

    terms: frozenset[str]
    entities: frozenset[str]
    when: bool


def parse_question(text: str) -> Question:
    """Content terms (minus recall verbs) and entities: possessors and mid-sentence names."""
    _, body = split_speaker(text)
    terms = frozenset(t for t in analyze(body) if t not in _ASKING)
    entities: set[str] = set()
    raw = re.findall(r"[^\W_]+(?:['\u2019][^\W_]+)*", body)
    for i, word in enumerate(raw):
        possessive = re.search(r"['\u2019]s$|s['\u2019]$", word) is not None
        name = i > 0 and word[:1].isupper() and word.lower() not in ("i", "i'm", "i've")
        if possessive or name:
            t = term(strip_tail(word.lower().replace("\u2019", "'")))
            if t in terms:
                entities.add(t)
    return Question(terms, frozenset(entities), _WHEN.match(body) is not None)


def _expand(terms: set[str]) -> set[str]:
    out = set(terms)
    for t in terms:
        out |= _SYNONYMS.get(t, set())
    return out


@dataclass(slots=True)
class Evidence:
    """The best answering clause found in the memories and how well it covers the question."""

    clause: str
    coverage: float
    relevance: float
    memory: dict[str, Any]
    speaker: str | None
    sentence: str


def _clauses(sentence: str) -> list[str]:
    if len(sentence.split()) <= _CLAUSE_WORDS:
        return [sentence]
    return [c.strip() for c in _CLAUSE.split(sentence) if c and c.strip()]


def find_evidence(question: Question, memories: list[dict[str, Any]]) -> Evidence | None:
    """The clause that answers ``question`` with enough evidence, or None."""
    if not question.terms:
        return None
    attributes = question.terms - question.entities
    best: tuple[float, Evidence] | None = None
    for memory in memories:
        content = str(memory.get("content", ""))
        speaker, body = split_speaker(content)
        memory_terms = _expand(set(analyze(content)))
        if not question.entities <= memory_terms:
            continue
        speaker_terms = set(analyze(speaker)) if speaker else set()
        for sentence in sentences(body) or [body]:
            for clause in _clauses(sentence):
                have = _expand(set(analyze(clause)))
                if attributes:
                    share = len(attributes & have) / len(attributes)
                    if share < 0.5:
                        continue
                covered = question.terms & (have | speaker_terms | question.entities)
                coverage = len(covered) / len(question.terms)
                novel = set(analyze(clause)) - question.terms - speaker_terms
                if coverage < 0.5 or not novel:
                    continue
                relevance = float(memory.get("relevance", 0.0))
                rank = coverage + 0.3 * relevance + 0.05 * min(len(novel), 4)
                if best is None or rank > best[0]:
                    best = (rank, Evidence(clause, coverage, relevance, memory, speaker,
                                           sentence))
    return best[1] if best else None


# -- perspective --------------------------------------------------------------------------

_TO_LISTENER: Final = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "i'm": "you're", "i've": "you've", "i'll": "you'll", "i'd": "you'd", "am": "are",
    "your": "my", "yours": "mine", "yourself": "myself", "you're": "I'm", "you've": "I've",
    "you'll": "I'll", "you'd": "I'd", "we": "we", "our": "our",
}
_PAIRS: Final = re.compile(r"\b(I am|I was|you are|you were)\b", re.IGNORECASE)
_PAIR_FLIP: Final = {"i am": "you are", "i was": "you were", "you are": "I am",
                     "you were": "I was"}


def _speaker_map(name: str) -> dict[str, str]:
    return {"i": name, "me": name, "my": f"{name}'s", "mine": f"{name}'s", "myself": name,
            "i'm": f"{name} is", "i've": f"{name} has", "i'll": f"{name} will",
            "i'd": f"{name} would", "am": "is"}


def flip_perspective(text: str, speaker: str | None = None) -> str:
    """The user's first person as the listener's second ("my sister" → "your sister"), the
    user's "you" (Echo) as "I"; with a speaker label, their first person as their name."""
    if speaker is None:
        text = _PAIRS.sub(lambda m: "\0" + _PAIR_FLIP[m.group(1).lower()] + "\0", text)
        mapping = _TO_LISTENER
    else:
        text = _PAIRS.sub(lambda m: "\0" + (f"{speaker} is" if m.group(1).lower() == "i am"
                                             else f"{speaker} was" if m.group(1).lower() == "i was"
                                             else m.group(1)) + "\0", text)
        mapping = _speaker_map(speaker)
    out: list[str] = []
    protected = False
    prev_word = ""
    for token in _TOKEN.findall(text.replace("\0", " \0 ")):
        if token.strip() == "\0":
            protected = not protected
            continue
        if protected or not token[:1].isalnum():
            out.append(token)
            continue
        key = token.lower().replace("\u2019", "'")
        if key == "you" and speaker is None:
            new = "I" if prev_word in ("", "and", "that", "because", "if", "when", "so") else "me"
        else:
            new = mapping.get(key, token)
        if new != token and token[:1].isupper() and new[:1].islower():
            new = new[:1].upper() + new[1:]
        out.append(new)
        prev_word = key
    result = "".join(out)
    result = re.sub(r" {2,}", " ", result).strip()
    return result[:1].upper() + result[1:]


# -- replies ------------------------------------------------------------------------------


def _date_of(evidence: Evidence) -> tuple[str | None, bool]:
    """A date label for a "when" answer and whether it came from a resolved expression."""
    dates = [d for d in evidence.memory.get("dates") or [] if isinstance(d, dict)]
    in_clause = [d for d in dates if str(d.get("text", "")).lower() in evidence.sentence.lower()]
    chosen = (in_clause or dates)[:1]
    if chosen:
        return str(chosen[0].get("label") or chosen[0].get("date")), True
    said = evidence.memory.get("said_on")
    if isinstance(said, str):
        try:
            return format_day(date.fromisoformat(said[:10])), False
        except ValueError:
            return None, False
    return None, False


def compose(question: Question, evidence: Evidence) -> tuple[str, float]:
    """The reply text and its confidence."""
    clause = flip_perspective(evidence.clause.rstrip(" ,;"), evidence.speaker)
    if clause[-1:] not in ".!?":
        clause += "."
    confidence = 0.3 + 0.45 * evidence.coverage + 0.25 * evidence.relevance
    if question.when:
        label, resolved = _date_of(evidence)
        said = evidence.memory.get("said_on")
        if label and resolved:
            suffix = ""
            if isinstance(said, str):
                try:
                    suffix = f" (said on {format_day(date.fromisoformat(said[:10]))})"
                except ValueError:
                    suffix = ""
            return f"{label}: {clause}{suffix}", min(1.0, confidence)
        if label:
            return f"Around {label}: {clause}", min(1.0, confidence * 0.8)
        return clause, confidence * 0.6
    return clause, min(1.0, confidence)
